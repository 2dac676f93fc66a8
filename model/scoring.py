"""Category scores read from a VLM's next-token distribution, with one shared prefix per image.

For every policy category the model is asked a yes/no question (`model.prompts`); the score is
P("Yes") / (P("Yes") + P("No")) at the first answer position, i.e. a softmax over just those two
tokens' logits. The prompt is built so that everything before the question is shared:

    prefix  = [system] [image tokens] [text] [OCR hint] "\\n"      computed once per image
    suffix  = "<question>" [end of turn] [assistant tag]           one row per category

The prefix runs once (KV cache kept). The N category suffixes of an image then run packed into
ONE row (`continuation_plan`): their tokens back to back, each question's positions restarting
at the end of the prefix, and a 4-D mask letting a token see the prefix and the earlier tokens
of its own question only. So the continuation costs sum(question lengths) tokens per image,
with no copy of the KV cache and no padding. Narrow models (the tiny and demo ones) keep the
older layout (the cache repeated N times, questions right-padded to the longest): there the
attention over the other questions' keys costs more than the padding saves (`packing_pays`
picks by an estimate of FLOPs; both layouts give the same scores). Several images are
left-padded into one prefix batch. Only the two answer rows of the LM head are multiplied in,
so no [B*N, L, vocab] logits tensor is ever built.
`score_naive` is the reference (one full sequence per category) that the tests compare against.

Where the time goes (bench/scoring.py, `timings`): the questions carry each category's
description (about 50 tokens each, 11 categories: ~600 continuation tokens against a ~320-token
prefix), so the continuation, not the prefix, bounds the speed-up over the naive pass.

Run: python bench/scoring.py
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
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
    packed: bool | None = None,
    timings: dict[str, float] | None = None,
) -> list[dict[str, float]]:
    """Scores for every policy category of every item: one prefix forward for the whole image
    batch, then one forward over the category suffixes reusing its KV cache (packed: one row
    per image; `packed=False`: [B * N] padded rows over a repeated cache; None: whichever
    `packing_pays` estimates cheaper for this model width). `timings`, if given,
    receives the seconds of the prefix and continuation forwards (keys `prefix_s`,
    `continuation_s`) and the continuation's token count (`continuation_tokens`, padding
    included)."""
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
        t0 = time.perf_counter()
        out = core(**enc, position_ids=prefix_pos, use_cache=True)
        cache = kv_cache(out)
        t1 = time.perf_counter()
        plan = continuation_plan(tokenizer, parts[0].suffixes, device)
        if packed is None:
            width = core.get_input_embeddings().embedding_dim
            packed = packing_pays(width, int(enc["input_ids"].shape[1]), plan.lengths)
        if packed:
            picked = _continue_packed(core, enc, cache, next_pos, plan, dtype)  # [B*N, D]
            n_tokens = plan.ids.shape[1] * n_img
        else:
            picked, n_tokens = _continue_repeated(
                core, enc, cache, next_pos, tokenizer, parts[0].suffixes, n_img, n_cat
            )
        probs = _answer_logits(model, picked, yes_no).float().softmax(-1)[:, 0]  # P(Yes) [B*N]
        if timings is not None:
            timings |= {
                "prefix_s": t1 - t0,
                "continuation_s": time.perf_counter() - t1,
                "continuation_tokens": float(n_tokens),
            }
    probs = probs.view(n_img, n_cat).cpu().tolist()
    return [dict(zip(policy.ids, row, strict=True)) for row in probs]


def packing_pays(hidden: int, prefix_len: int, lengths: list[int]) -> bool:
    """Whether one packed row of the N questions costs fewer FLOPs than N padded rows.

    Per token and layer, the projections and MLP cost ~26 h^2 and attention ~4 h * keys. Packed:
    T = sum(lengths) tokens seeing Lp + T keys each (the mask hides most, the kernel still
    computes them); padded: N * max(lengths) tokens seeing Lp + max keys. Wide models (the
    real 2B, h = 2048) gain from packing; narrow ones (the tiny and demo models, h < ~330 at
    the default policy's lengths) lose, so they keep the padded rows.
    """
    total, widest = sum(lengths), max(lengths)
    packed = total * (26 * hidden * hidden + 4 * hidden * (prefix_len + total))
    padded = len(lengths) * widest * (26 * hidden * hidden + 4 * hidden * (prefix_len + widest))
    return packed < padded


@dataclass(frozen=True)
class ContinuationPlan:
    """The N questions of one image packed into one row of T = sum(lengths) tokens."""

    ids: torch.Tensor  # [1, T] the questions' token ids back to back
    offsets: torch.Tensor  # [T] position of each token within its own question
    allowed: torch.Tensor  # [T, T] bool: query token may see key token (same question, not later)
    last: torch.Tensor  # [N] index of each question's last token (where its answer is read)
    lengths: list[int]  # [N] tokens per question


def continuation_plan(tokenizer: Any, suffixes: list[str], device: Any) -> ContinuationPlan:
    """Pack the category suffixes into one row with a block-diagonal causal mask."""
    import torch

    rows = tokenizer(suffixes, add_special_tokens=False)["input_ids"]
    lengths = torch.tensor([len(r) for r in rows])
    segment = torch.repeat_interleave(torch.arange(len(rows)), lengths)  # [T]
    starts = torch.cumsum(lengths, 0) - lengths
    index = torch.arange(int(lengths.sum()))
    offsets = index - starts[segment]
    allowed = (segment[:, None] == segment[None, :]) & (index[None, :] <= index[:, None])
    ids = torch.tensor([t for r in rows for t in r], dtype=torch.long)[None]
    return ContinuationPlan(
        ids=ids.to(device),
        offsets=offsets.to(device),
        allowed=allowed.to(device),
        last=(starts + lengths - 1).to(device),
        lengths=lengths.tolist(),
    )


def _continue_packed(
    core: Any,
    enc: Any,
    cache: Any,
    next_pos: torch.Tensor,
    plan: ContinuationPlan,
    dtype: Any,
) -> torch.Tensor:
    """One forward of [B, T] packed questions over the prefix cache -> [B*N, D] answer states.

    The mask is additive (0 = see, dtype-min = not), the 4-D form transformers passes through
    unchanged to both the eager and the SDPA attention: [B, 1, T, Lp + T].
    """
    import torch

    n_img = enc["input_ids"].shape[0]
    width = plan.ids.shape[1]
    ids = plan.ids.expand(n_img, -1)  # [B, T]
    see_prefix = enc["attention_mask"].bool()[:, None, :].expand(-1, width, -1)  # [B, T, Lp]
    see_own = plan.allowed[None].expand(n_img, -1, -1)  # [B, T, T]
    allowed = torch.cat([see_prefix, see_own], dim=-1)[:, None]  # [B, 1, T, Lp + T]
    mask_dtype = dtype if dtype.is_floating_point else torch.float32
    mask = torch.zeros(allowed.shape, dtype=mask_dtype, device=allowed.device)
    mask.masked_fill_(~allowed, torch.finfo(mask_dtype).min)
    pos = next_pos[:, None] + plan.offsets[None, :]  # [B, T]
    if _uses_mrope(core, enc):
        pos = pos[None].expand(3, -1, -1)  # text tokens: same position on all 3 axes
    hidden = core(
        input_ids=ids,
        attention_mask=mask,
        position_ids=pos,
        use_cache=True,
        **with_cache(core, cache),
    ).last_hidden_state  # [B, T, D]
    return hidden[:, plan.last].reshape(-1, hidden.shape[-1])  # image-major: row b*N + n


def _continue_repeated(
    core: Any,
    enc: Any,
    cache: Any,
    next_pos: torch.Tensor,
    tokenizer: Any,
    suffixes: list[str],
    n_img: int,
    n_cat: int,
) -> tuple[torch.Tensor, int]:
    """The older layout: the cache repeated per category, [B*N, Ls] right-padded questions.
    Returns the [B*N, D] answer states and the tokens run (padding included)."""
    import torch

    device = enc["input_ids"].device
    # [B, H, Lp, Dh] -> [B*N, H, Lp, Dh], image-major (row b*N + n).
    cache.batch_repeat_interleave(n_cat)

    # The suffix text is the same for every item (only the prefix carries item content).
    suf_ids, suf_mask, suf_len = _suffix_batch(tokenizer, suffixes, device)
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
    return picked, int(ids.numel())


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
