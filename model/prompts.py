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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from storage.errors import WardenError

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

# Where the policy's text sits. "question": in every category's question (the text after the
# image; what every Warden checkpoint so far was trained on). "policy": listed once in the
# system turn, before the image, with a short question per category ("Does it violate
# scam_fraud? ..."): the scorer's continuation then runs ~15 tokens per category instead of ~55,
# and the policy part is the same for every image (bench/scoring.py measures both).
# "policy" is the faster one (InternVL3.5-2B's shape, 1 torch thread CPU, both layouts timed in
# one alternating run: bench/results/scoring_1thread.json, `layouts_same_run`), yet the default
# stays "question": a layout is what a model was trained on, not a speed setting. The shipped
# demo checkpoint and the adapters trained before layouts were declared were trained on
# "question" without declaring it, so changing the default would score those models with
# prompts they never saw. A model trained on "policy" declares it (LAYOUT_FILE): post-training
# builds its prompts in the layout the base declares (`warden dataset build --layout BASE`),
# refuses a dataset in another, and writes the file into the adapter (training.posttrain).
PromptLayout = Literal["question", "policy"]
DEFAULT_LAYOUT: PromptLayout = "question"
LAYOUTS: tuple[PromptLayout, ...] = ("question", "policy")
# A model directory declares the layout it was trained on in this file ({"layout": "policy"});
# without it, DEFAULT_LAYOUT.
LAYOUT_FILE = "warden_prompt.json"

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


def context_text(
    *,
    text: str | None,
    ocr_text: str | None,
    media_ocr: Sequence[tuple[str, str | None]] | None = None,
) -> str:
    """The text part of the shared prefix (after the images): caption (if any) and OCR hint.

    An item of several media (`media_ocr`: (label, OCR text) per image or frame) gets one
    labelled line each ('Image 2 text: "..."') instead of the single OCR line."""
    if media_ocr is not None and len(media_ocr) > 1:
        lines = [format_text_hint(text)] + [
            f"{label} text: {_quote(ocr or '', MAX_OCR_CHARS)}" for label, ocr in media_ocr
        ]
        return "\n".join(line for line in lines if line)
    lines = [line for line in (format_text_hint(text), format_ocr_hint(ocr_text)) if line]
    return "\n".join(lines)


def category_question(category: PolicyCategory, layout: PromptLayout = DEFAULT_LAYOUT) -> str:
    """The yes/no question for one category: built from its description ("question" layout),
    or naming only its id, the system turn having listed the policy ("policy" layout)."""
    if layout == "policy":
        return f"Does it violate {category.id}? Answer {ANSWER_YES} or {ANSWER_NO}."
    return (
        f"Policy category {category.id} ({category.title}): {category.description} "
        f"Does this content violate it? Answer {ANSWER_YES} or {ANSWER_NO}."
    )


def policy_text(policy: Policy) -> str:
    """The policy listed for the system turn of the "policy" layout: one line per category."""
    lines = [f"- {c.id} ({c.title}): {c.description}" for c in policy.categories]
    return "Policy categories:\n" + "\n".join(lines)


def system_text(policy: Policy, layout: PromptLayout = DEFAULT_LAYOUT) -> str:
    """The system turn: the analyst's role, and the policy itself in the "policy" layout."""
    if layout == "policy":
        return SYSTEM_PROMPT + "\n" + policy_text(policy)
    return SYSTEM_PROMPT


def check_layout(layout: str) -> PromptLayout:
    """`layout` if it is one of LAYOUTS; a WardenError naming them otherwise."""
    if layout not in LAYOUTS:
        raise WardenError(f"prompt layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    return layout  # type: ignore[return-value]


def model_layout(model_dir: str | Path) -> PromptLayout:
    """The layout a model directory declares in LAYOUT_FILE; DEFAULT_LAYOUT when it has none
    (a hub id, or a checkpoint trained before layouts existed). A file that is not a JSON
    object with a known "layout" is an error, not a silent default: the wrong layout scores
    every category wrongly."""
    path = Path(model_dir) / LAYOUT_FILE
    if not path.is_file():
        return DEFAULT_LAYOUT
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WardenError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict) or "layout" not in data:
        raise WardenError(f'{path}: expected {{"layout": "question" | "policy"}}')
    return check_layout(str(data["layout"]))


def served_layout(model_dir: str | Path, adapter: str | Path | None = None) -> PromptLayout:
    """The layout to score a model in: its adapter's declared one (post-training writes it
    there, `training.posttrain`), else the base directory's (an adapter trained before
    layouts were declared followed its base)."""
    if adapter is not None and (Path(adapter) / LAYOUT_FILE).is_file():
        return model_layout(adapter)
    return model_layout(model_dir)


def write_model_layout(model_dir: str | Path, layout: PromptLayout) -> None:
    """Record in a model directory the layout it was trained on (training calls this)."""
    path = Path(model_dir) / LAYOUT_FILE
    path.write_text(json.dumps({"layout": check_layout(layout)}) + "\n", encoding="utf-8")


def rationale_question(policy: Policy) -> str:
    """Asks for the strict JSON verdict that `model.rationale` parses."""
    ids = ", ".join(policy.ids)
    return (
        "Which policy categories does this content violate? Reply with JSON only, exactly "
        '{"categories": [<ids>], "rationale": "<one short sentence>"}, '
        f"using [] when none apply. Allowed ids: {ids}."
    )


def user_text(
    *,
    text: str | None,
    ocr_text: str | None,
    question: str | None,
    media_ocr: Sequence[tuple[str, str | None]] | None = None,
) -> str:
    """The text of the user turn: context, then (if given) the question after the separator."""
    ctx = context_text(text=text, ocr_text=ocr_text, media_ocr=media_ocr)
    if question is None:
        return ctx
    return ctx + QUESTION_SEPARATOR + question


def build_messages(
    policy: Policy,
    *,
    text: str | None,
    ocr_text: str | None,
    question: str | None,
    layout: PromptLayout = DEFAULT_LAYOUT,
    media_ocr: Sequence[tuple[str, str | None]] | None = None,
) -> list[dict[str, Any]]:
    """Chat messages in the Hugging Face multimodal format (one image placeholder).

    `question=None` gives the shared context only. In the "question" layout the question
    carries the policy text; in the "policy" layout the system turn lists `policy`.
    """
    system = system_text(policy, layout)
    return [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {
            "role": "user",
            "content": [
                # One placeholder per medium (`media_ocr` lists them; a single image: one).
                *([{"type": "image"}] * (len(media_ocr) if media_ocr else 1)),
                {
                    "type": "text",
                    "text": user_text(
                        text=text, ocr_text=ocr_text, question=question, media_ocr=media_ocr
                    ),
                },
            ],
        },
    ]


def answer_messages(answer: str) -> list[dict[str, Any]]:
    """The assistant turn for training (TRL prompt/completion format): "Yes", "No" or JSON."""
    return [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def yes_no(violates: bool) -> str:
    return ANSWER_YES if violates else ANSWER_NO


# Descriptions for text-first review (model.describe): one fixed prompt per image or frame,
# VisionPangu-style (dense: objects, people, actions, visible text, setting). No policy and no
# OCR hint: the description says what the pixels show, so the card's OCR line and the model's
# description are two separate witnesses.
DESCRIBE_SYSTEM_PROMPT = (
    "You describe images for a content moderation team, who read your description instead "
    "of looking at the image. Describe only what is visible; do not guess, judge or refuse."
)
DESCRIBE_QUESTION = (
    "Describe this {what} in detail: the objects; the people (how many, how they look, what "
    "they wear); what they are doing; any visible text, quoted exactly; and the setting."
)


def describe_question(kind: str = "image") -> str:
    """The description question for one image or one video frame (`kind` "frame")."""
    return DESCRIBE_QUESTION.format(what="video frame" if kind == "frame" else "image")


def describe_messages(kind: str = "image") -> list[dict[str, Any]]:
    """Chat messages asking for one medium's description (one image placeholder)."""
    return [
        {"role": "system", "content": [{"type": "text", "text": DESCRIBE_SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": describe_question(kind)}],
        },
    ]
