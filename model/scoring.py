"""Category scores read from a VLM's next-token distribution, with one shared prefix per image.

For every policy category the model is asked a yes/no question (`model.prompts`); the score is
P("Yes") / (P("Yes") + P("No")) at the first answer position, i.e. a softmax over just those two
tokens' logits. The prompt is built so that everything before the question is shared:

    prefix  = [system] [image tokens] [text] [OCR hint] "\\n"      computed once per image
    suffix  = "<question>" [end of turn] [assistant tag]           one row per category

The prefix runs once (KV cache kept); the cache is repeated along the batch for the N category
suffixes, which run in one batched forward. Several images are left-padded into one prefix
batch. Only the two answer rows of the LM head are multiplied in, so no [B*N, L, vocab] logits
tensor is ever built. `score_naive` is the reference (one full sequence per category) that the
tests compare against.

Run: python bench/scoring.py
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model import prompts

if TYPE_CHECKING:
    import torch

    from model.backends import ScoringInput
    from storage.policy import Policy

log = logging.getLogger(__name__)

# Stands in for the question while rendering the chat template. json.dumps escapes NUL, so no
# escaped user text or OCR text can contain it.
_SENTINEL = "\x00warden-question\x00"


@dataclass(frozen=True)
class PromptParts:
    """One item's prompt split at the question: `prefix + suffixes[i]` is category i's prompt."""

    prefix: str
    suffixes: list[str]


def render_prompt_parts(
    processor: Any, policy: Policy, *, text: str | None, ocr_text: str | None
) -> PromptParts:
    """Render the chat template once with a sentinel question and split there.

    The text is the same one `apply_chat_template(build_messages(..., question=q),
    add_generation_prompt=True)` gives for each category, which is what training sees.
    """
    messages = prompts.build_messages(policy, text=text, ocr_text=ocr_text, question=_SENTINEL)
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    before, sep, after = rendered.partition(_SENTINEL)
    if not sep:
        raise RuntimeError("the chat template dropped the question; cannot split the prompt")
    questions = [prompts.category_question(c) for c in policy.categories]
    return PromptParts(prefix=before, suffixes=[q + after for q in questions])


def answer_token_ids(tokenizer: Any) -> tuple[int, int]:
    """Token ids of "Yes" and "No"; each must be a single token of the vocabulary."""
    ids = []
    for word in (prompts.ANSWER_YES, prompts.ANSWER_NO):
        enc = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            raise ValueError(f"{word!r} is {len(enc)} tokens in this tokenizer; scoring needs one")
        ids.append(int(enc[0]))
    return ids[0], ids[1]


def core_model(model: Any) -> Any:
    """The `XxxModel` under a `XxxForConditionalGeneration` (through a PEFT wrapper if any)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def _answer_logits(model: Any, hidden: torch.Tensor, yes_no: tuple[int, int]) -> torch.Tensor:
    """[R, D] hidden states -> [R, 2] logits of (Yes, No), using only those LM-head rows."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    ids = list(yes_no)
    weight = getattr(head, "weight", None)
    if isinstance(head, torch.nn.Linear) and weight is not None and weight.dtype.is_floating_point:
        logits = hidden.to(weight.dtype) @ weight[ids].T  # [R, 2]
        if head.bias is not None:
            logits = logits + head.bias[ids]
        return logits
    return head(hidden)[:, ids]  # quantized / wrapped head: full row, then pick


@functools.cache
def _cache_arg(model_class: type) -> str:
    """transformers 5 renamed `past_key_values` to `cache` (the old name is removed in 5.40)."""
    params = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def kv_cache(out: Any) -> Any:
    """The KV cache of a forward's output, under either name."""
    found = getattr(out, "cache", None)
    return found if found is not None else out.past_key_values


def with_cache(core: Any, cache: Any) -> dict[str, Any]:
    """Keyword arguments passing `cache` to `core.forward` under the name it takes."""
    return {_cache_arg(type(core)): cache}


def _uses_mrope(core: Any, enc: Any) -> bool:
    return hasattr(core, "get_rope_index") and "mm_token_type_ids" in enc


def _prefix_positions(core: Any, enc: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(position_ids for the left-padded prefix batch, next position per row [B]).

    Left padding shifts every real token, so positions come from the mask, not arange. Qwen2-VL
    style models use 3-D M-RoPE positions whose last value is not len-1: continuing the cache
    must start at len + rope_delta (FACTS), so those are computed here explicitly.
    """
    mask = enc["attention_mask"]
    lengths = mask.sum(-1)  # [B]
    if _uses_mrope(core, enc):
        pos, deltas = core.get_rope_index(
            enc["input_ids"],
            mm_token_type_ids=enc["mm_token_type_ids"],
            image_grid_thw=enc.get("image_grid_thw"),
            attention_mask=mask,
        )  # [3, B, Lp], [B, 1]
        return pos, lengths + deltas.view(-1).to(lengths.device)
    pos = (mask.long().cumsum(-1) - 1).clamp(min=0)  # [B, Lp]
    return pos, lengths


def _processor_inputs(
    processor: Any, texts: list[str], images: list[Any], device: Any, dtype: Any
) -> Any:
    enc = processor(
        text=texts,
        images=[[img] for img in images],
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )
    enc = enc.to(device)
    for key in ("pixel_values",):
        if key in enc and enc[key].is_floating_point():
            enc[key] = enc[key].to(dtype)
    return enc


def _suffix_batch(tokenizer: Any, suffixes: list[str], device: Any) -> tuple[Any, Any, Any]:
    """Right-padded suffix ids [N, Ls], mask [N, Ls], lengths [N].

    Right padding is harmless here: a real token never attends to a later pad (causal), and
    the answer is read at each row's own last real position.
    """
    import torch

    ids = tokenizer(suffixes, add_special_tokens=False)["input_ids"]
    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return out.to(device), mask.to(device), mask.sum(-1).to(device)


def score_shared_prefix(
    model: Any,
    processor: Any,
    items: Sequence[ScoringInput],
    policy: Policy,
    *,
    yes_no: tuple[int, int] | None = None,
) -> list[dict[str, float]]:
    """Scores for every policy category of every item: one prefix forward for the whole image
    batch, then one forward over [B * N] category suffixes reusing the repeated KV cache."""
    import torch

    if not items:
        return []
    tokenizer = processor.tokenizer
    yes_no = yes_no or answer_token_ids(tokenizer)
    device = model.device
    dtype = model.dtype
    core = core_model(model)
    parts = [
        render_prompt_parts(processor, policy, text=i.text, ocr_text=i.ocr_text) for i in items
    ]
    n_cat = len(policy.categories)
    n_img = len(items)

    with torch.inference_mode():
        enc = _processor_inputs(
            processor, [p.prefix for p in parts], [i.image for i in items], device, dtype
        )
        prefix_pos, next_pos = _prefix_positions(core, enc)  # next_pos: [B]
        out = core(**enc, position_ids=prefix_pos, use_cache=True)
        cache = kv_cache(out)
        # [B, H, Lp, Dh] -> [B*N, H, Lp, Dh], image-major (row b*N + n).
        cache.batch_repeat_interleave(n_cat)

        # The suffix text is the same for every item (only the prefix carries item content).
        suf_ids, suf_mask, suf_len = _suffix_batch(tokenizer, parts[0].suffixes, device)
        width = suf_ids.shape[1]
        ids = suf_ids.repeat(n_img, 1)  # [B*N, Ls]
        attn = torch.cat(
            [enc["attention_mask"].repeat_interleave(n_cat, 0), suf_mask.repeat(n_img, 1)], dim=1
        )  # [B*N, Lp + Ls]
        start = next_pos.repeat_interleave(n_cat)  # [B*N]
        pos = start[:, None] + torch.arange(width, device=device)[None, :]  # [B*N, Ls]
        if _uses_mrope(core, enc):
            pos = pos[None].expand(3, -1, -1)  # text tokens: same position on all 3 axes
        hidden = core(
            input_ids=ids,
            attention_mask=attn,
            position_ids=pos,
            use_cache=True,
            **with_cache(core, cache),
        ).last_hidden_state  # [B*N, Ls, D]
        last = (suf_len - 1).repeat(n_img)  # [B*N]
        picked = hidden[torch.arange(hidden.shape[0], device=device), last]  # [B*N, D]
        probs = _answer_logits(model, picked, yes_no).float().softmax(-1)[:, 0]  # P(Yes) [B*N]
    probs = probs.view(n_img, n_cat).cpu().tolist()
    return [dict(zip(policy.ids, row, strict=True)) for row in probs]


def score_naive(
    model: Any,
    processor: Any,
    item: ScoringInput,
    policy: Policy,
    *,
    yes_no: tuple[int, int] | None = None,
) -> dict[str, float]:
    """Reference: each category's whole prompt (image included) tokenized and run on its own,
    the answer read from the model's own LM head. Slow; for tests and the benchmark."""
    import torch

    yes_no = yes_no or answer_token_ids(processor.tokenizer)
    parts = render_prompt_parts(processor, policy, text=item.text, ocr_text=item.ocr_text)
    scores: dict[str, float] = {}
    with torch.inference_mode():
        for cid, suffix in zip(policy.ids, parts.suffixes, strict=True):
            enc = _processor_inputs(
                processor, [parts.prefix + suffix], [item.image], model.device, model.dtype
            )
            logits = model(**enc, use_cache=False, logits_to_keep=1).logits[0, -1]  # [V]
            scores[cid] = float(logits[list(yes_no)].float().softmax(-1)[0])
    return scores


def generate_reply(
    model: Any,
    processor: Any,
    item: ScoringInput,
    policy: Policy,
    *,
    question: str,
    max_new_tokens: int,
    min_new_tokens: int | None = None,
) -> str:
    """Greedy-decode the model's reply to `question` about one item (rationale, JSON verdict).
    `min_new_tokens` forces a length (benchmarks: a random model stops at once otherwise)."""
    import torch

    messages = prompts.build_messages(
        policy, text=item.text, ocr_text=item.ocr_text, question=question
    )
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = _processor_inputs(processor, [text], [item.image], model.device, model.dtype)
    tok = processor.tokenizer
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        )
    new = out[0, enc["input_ids"].shape[1] :]
    return tok.decode(new, skip_special_tokens=True)
