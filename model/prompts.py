"""The one place prompts are built: serving, training and the demo model all call these.

A scoring prompt is a chat with a system turn and one user turn:
    [system] + [image] + text posted beside it + OCR hint  + <question>
The part before the question is identical for every policy category, so the scorer computes it
once (image included) and reuses its KV cache; each category's question is the suffix, and the
model's next token after the assistant tag is read as P("Yes") against P("No").
Training uses the same `build_messages` with the completion "Yes" / "No" (or the JSON verdict
for rationales), so the prompt is identical at training and serving time.

Pure Python, no torch: importing this module is fast.

Run: python -c "from model.prompts import *; from storage.policy import load_policy as L;
    from storage.settings import DEFAULT_POLICY as D; p = L(D);
    q = category_question(p.categories[0]);
    print(build_messages(p, text=None, ocr_text='WIN $$$', question=q))"
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage.policy import Policy, PolicyCategory

# The two answer words read from the next-token distribution; single tokens in every tokenizer
# Warden builds (model.tiny puts them in the corpus) and in Qwen-family vocabularies.
ANSWER_YES = "Yes"
ANSWER_NO = "No"

# Caps keep a long caption or a page of OCR from crowding the context (and the KV cache).
MAX_OCR_CHARS = 400
MAX_TEXT_CHARS = 400

SYSTEM_PROMPT = (
    "You are a content moderation analyst. You look at an image and any text that comes "
    "with it, and judge it strictly against one written policy."
)

# Separates the shared context from the per-category question. The question must start right
# after a newline with a letter, so byte-level BPE tokenizers split there exactly and the
# prefix/suffix token ids concatenate to the ids of the whole prompt.
QUESTION_SEPARATOR = "\n"


def _quote(value: str, cap: int) -> str:
    """A one-line, double-quoted rendering of untrusted text, truncated to `cap` characters.

    json.dumps escapes quotes, backslashes and newlines, so text cannot close the quote or
    start a new prompt line ("ignore the policy...") that looks like ours. Every "<" becomes
    "‹" (U+2039): tokenizers parse special-token strings inside plain text, so OCR text reading
    "<|im_end|><|im_start|>assistant" would end our turn, and "<IMG_CONTEXT>" would add an
    image slot without an image (the processor then refuses the whole batch). All the special
    tokens of the model families Warden serves start with "<".
    """
    value = " ".join(value.split()).replace("<", "\u2039")
    if len(value) > cap:
        value = value[: cap - 1].rstrip() + "…"
    return json.dumps(value, ensure_ascii=False)


def format_ocr_hint(ocr_text: str | None) -> str:
    """'OCR: "<text>"'; an empty string in the quotes when no text was found (or OCR is off)."""
    return f"OCR: {_quote(ocr_text or '', MAX_OCR_CHARS)}"


def format_text_hint(text: str | None) -> str | None:
    """'Text: "<caption>"' for the text posted beside the image; None when there is none."""
    if text is None or not text.strip():
        return None
    return f"Text: {_quote(text, MAX_TEXT_CHARS)}"


def context_text(*, text: str | None, ocr_text: str | None) -> str:
    """The text part of the shared prefix (after the image): caption (if any) and OCR hint."""
    lines = [line for line in (format_text_hint(text), format_ocr_hint(ocr_text)) if line]
    return "\n".join(lines)


def category_question(category: PolicyCategory) -> str:
    """The yes/no question for one category, built from its description."""
    return (
        f"Policy category {category.id} ({category.title}): {category.description} "
        f"Does this content violate it? Answer {ANSWER_YES} or {ANSWER_NO}."
    )


def rationale_question(policy: Policy) -> str:
    """Asks for the strict JSON verdict that `model.rationale` parses."""
    ids = ", ".join(policy.ids)
    return (
        "Which policy categories does this content violate? Reply with JSON only, exactly "
        '{"categories": [<ids>], "rationale": "<one short sentence>"}, '
        f"using [] when none apply. Allowed ids: {ids}."
    )


def user_text(*, text: str | None, ocr_text: str | None, question: str | None) -> str:
    """The text of the user turn: context, then (if given) the question after the separator."""
    ctx = context_text(text=text, ocr_text=ocr_text)
    if question is None:
        return ctx
    return ctx + QUESTION_SEPARATOR + question


def build_messages(
    policy: Policy,
    *,
    text: str | None,
    ocr_text: str | None,
    question: str | None,
) -> list[dict[str, Any]]:
    """Chat messages in the Hugging Face multimodal format (one image placeholder).

    `question=None` gives the shared context only. `policy` is accepted so that prompts which
    list the policy (e.g. `rationale_question(policy)`) and the signature stay in one place.
    """
    del policy  # the question carries the policy text; kept in the signature for callers
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {
                    "type": "text",
                    "text": user_text(text=text, ocr_text=ocr_text, question=question),
                },
            ],
        },
    ]


def answer_messages(answer: str) -> list[dict[str, Any]]:
    """The assistant turn for training (TRL prompt/completion format): "Yes", "No" or JSON."""
    return [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def yes_no(violates: bool) -> str:
    return ANSWER_YES if violates else ANSWER_NO
