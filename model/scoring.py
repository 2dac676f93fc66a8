"""Category scores read from a VLM's next-token distribution, with one shared prefix per image.

For every policy category the model is asked a yes/no question (`model.prompts`); the score is
P("Yes") / (P("Yes") + P("No")) at the first answer position, i.e. a softmax over just those two
tokens' logits. The prompt is built so that everything before the question is shared:

    prefix  = [system] [image tokens] [text] [OCR hint] "\\n"      computed once per image
    suffix  = "<question>" [end of turn] [assistant tag]           one row per category

The prefix's item-independent start (the system turn, up to the first image; it holds the whole
policy in the "policy" layout of `model.prompts`) runs once per process and its KV cache is
reused for every image (`StaticPrefix`, `reuse=`). The rest of the prefix runs once per image
(KV cache kept). The N category suffixes of an image then run packed into ONE row
(`continuation_plan`): the tokens every question starts with (the trunk: "Does it violate" in
the "policy" layout, "Policy category" in the "question" one) once, then each question's own
tokens back to back, their positions continuing after the trunk, and a 4-D mask letting a token
see the prefix, the trunk and the earlier tokens of its own question only. So the continuation
costs trunk + sum(question lengths - trunk) tokens per image, with no copy of the KV cache and
no padding. Narrow models (the tiny and demo ones) keep the older
layout (the cache repeated N times, questions right-padded to the longest): there the
attention over the other questions' keys costs more than the padding saves (`packing_pays`
picks by an estimate of FLOPs; both layouts give the same scores). Several images are
left-padded into one prefix batch. Only the two answer rows of the LM head are multiplied in,
so no [B*N, L, vocab] logits tensor is ever built.
`score_naive` is the reference (one full sequence per category) that the tests compare against.

Where the time goes (bench/scoring.py, `timings`): in the "question" layout each question
carries its category's description (about 55 tokens each, 11 categories: ~620 continuation
tokens against a ~340-token prefix on InternVL3.5-2B's shapes), so the continuation, not the
prefix, bounds the speed-up over the naive pass. The "policy" layout moves the descriptions
into the static prefix (computed once per process) and asks ~18-token questions. FLOP
ceilings over the naive pass: ~6x for the question layout (the image's ~220 token-equivalents
of vision and 276 prefix tokens against 11 x ~600 naive), ~16x for the policy one.
The prefill runs the same ~276 item tokens in both layouts and costs the same: on
InternVL3.5-2B's shape, 1 torch thread, an idle CPU (load 1.9), back to back in one process,
2.55 s question vs 2.56 s policy per image (vision 1.0-1.2 s of it; attention over the 476
cached tokens is SDPA's flash kernel for CPU in both, the cache copy ~20 ms), continuation
2.8 s (602 tokens) vs 1.1 s (171 tokens). A policy prefill once recorded at 7.4 s (against
4.4 s) was the process waiting for a core, not work: the bench timed the two layouts minutes
apart while other jobs' load on the 2 shared cores rose (rerun at load 1.4 -> 6.3: 3.8 s vs
2.2 s; under a profiler at load ~6, 8.7 s wall for 3.1 s of CPU). `timings` therefore gives
CPU time beside wall time, and bench/scoring.py's `compare_layouts` times both layouts
alternately in one loop (bench/results/scoring_1thread.json, `layouts_same_run`).
On a CPU shared with other jobs, 2 torch threads on 2 cores wait in OpenMP barriers on every
small op: a forward's fixed cost then dwarfs its tokens and every ratio shifts; use 1 thread.

Run: python bench/scoring.py
"""

from __future__ import annotations

import copy
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
    processor: Any,
    policy: Policy,
    *,
    text: str | None,
    ocr_text: str | None,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
    media_ocr: Sequence[tuple[str, str | None]] | None = None,
) -> PromptParts:
    """Render the chat template once with a sentinel question and split there.

    The text is the same one `apply_chat_template(build_messages(..., question=q),
    add_generation_prompt=True)` gives for each category, which is what training sees.
    """
    messages = prompts.build_messages(
        policy,
        text=text,
        ocr_text=ocr_text,
        question=_SENTINEL,
        layout=layout,
        media_ocr=media_ocr,
    )
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    before, sep, after = rendered.partition(_SENTINEL)
    if not sep:
        raise RuntimeError("the chat template dropped the question; cannot split the prompt")
    questions = [prompts.category_question(c, layout) for c in policy.categories]
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
    processor: Any, texts: list[str], images: Sequence[Any], device: Any, dtype: Any
) -> Any:
    """Tokenized prompts with each row's images: one image, or a list of 1..N in prompt order."""
    enc = processor(
        text=texts,
        images=[list(x) if isinstance(x, list | tuple) else [x] for x in images],
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
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
    reuse: dict[str, StaticPrefix] | None = None,
) -> list[dict[str, float]]:
    """Scores for every policy category of every item: one prefix forward for the whole image
    batch, then one forward over the category suffixes reusing its KV cache (packed: one row
    per image; `packed=False`: [B * N] padded rows over a repeated cache; None: whichever
    `packing_pays` estimates cheaper for this model width). `layout`: the prompt layout the
    model was trained on (`model.prompts`). `reuse`: a dict kept by the caller for as long as
    the model is loaded, where the static prefix's KV cache is kept between calls (None: it is
    computed once per call). `timings`, if given,
    receives the seconds of the prefix and continuation forwards (keys `prefix_s`,
    `continuation_s`; `static_s` of it for the static part, 0 when reused, and its
    `static_tokens`), the process CPU seconds over the same spans (`prefix_cpu_s`,
    `continuation_cpu_s`) and the continuation's token count (`continuation_tokens`, padding
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
        render_prompt_parts(
            processor,
            policy,
            text=i.text,
            ocr_text=i.ocr_text,
            layout=layout,
            media_ocr=i.media_ocr,
        )
        for i in items
    ]
    n_cat = len(policy.categories)
    n_img = len(items)

    with torch.inference_mode():
        c_static = time.process_time()
        static, t_static = _static_prefix(core, processor, [p.prefix for p in parts], device, reuse)
        cpu_static = time.process_time() - c_static if t_static else 0.0
        skip = len(static.text) if static is not None else 0
        enc = _processor_inputs(
            processor, [p.prefix[skip:] for p in parts], [i.images for i in items], device, dtype
        )
        t0, c0 = time.perf_counter(), time.process_time()
        cache, prefix_mask, next_pos = _run_prefix(core, enc, static, n_img)  # next_pos: [B]
        t1, c1 = time.perf_counter(), time.process_time()
        plan = continuation_plan(tokenizer, parts[0].suffixes, device)
        if packed is None:
            width = core.get_input_embeddings().embedding_dim
            packed = packing_pays(width, int(prefix_mask.shape[1]), plan.lengths, trunk=plan.trunk)
        if packed:
            picked = _continue_packed(
                core, enc, prefix_mask, cache, next_pos, plan, dtype
            )  # [B*N, D]
            n_tokens = plan.ids.shape[1] * n_img
        else:
            picked, n_tokens = _continue_repeated(
                core, enc, prefix_mask, cache, next_pos, tokenizer, parts[0].suffixes, n_cat
            )
        probs = _answer_logits(model, picked, yes_no).float().softmax(-1)[:, 0]  # P(Yes) [B*N]
        if timings is not None:
            timings |= {
                # The static part's time counts once, in the call that computed it.
                "prefix_s": t1 - t0 + t_static,
                "static_s": t_static,
                "static_tokens": float(static.length if static is not None else 0),
                "continuation_s": time.perf_counter() - t1,
                "continuation_tokens": float(n_tokens),
                # Process CPU seconds over the same spans: on a CPU shared with other jobs,
                # wall time well above CPU time (1 torch thread) is time spent waiting for a
                # core, not work.
                "prefix_cpu_s": c1 - c0 + cpu_static,
                "continuation_cpu_s": time.process_time() - c1,
            }
    probs = probs.view(n_img, n_cat).cpu().tolist()
    return [dict(zip(policy.ids, row, strict=True)) for row in probs]


# Static prefixes kept per `reuse` dict: one per (policy, layout) in practice; a caller that
# cycles through more policies than this starts over rather than growing without bound.
_REUSE_MAX = 4


@dataclass(frozen=True)
class StaticPrefix:
    """The start every prompt shares whatever the item: the system turn (the whole policy in
    the "policy" layout) up to the first image. Run once; its KV cache is copied per use."""

    text: str
    length: int  # tokens
    cache: Any  # KV cache of [1, length] tokens (never appended to: each use takes a copy)


def static_prefix_text(core: Any, processor: Any, prefixes: Sequence[str]) -> str:
    """The text every prefix starts with, cut before the first image placeholder; "" where the
    split is not safe: models with M-RoPE (3-D positions computed over the whole sequence) and
    tokenizers that add special tokens of their own (a BOS would land mid-sequence)."""
    token = getattr(processor, "image_token", None)
    if not token or hasattr(core, "get_rope_index") or not prefixes:
        return ""
    tok = processor.tokenizer
    if tok("a")["input_ids"] != tok("a", add_special_tokens=False)["input_ids"]:
        return ""
    text = prefixes[0].split(token, 1)[0]
    if not text or text == prefixes[0] or not all(p.startswith(text + token) for p in prefixes):
        return ""
    return text


def _static_prefix(
    core: Any,
    processor: Any,
    prefixes: Sequence[str],
    device: Any,
    reuse: dict[str, StaticPrefix] | None,
) -> tuple[StaticPrefix | None, float]:
    """The static prefix of these prompts, from `reuse` or run now (and kept there), and the
    seconds its forward took (0 when reused or when there is none)."""
    import torch

    text = static_prefix_text(core, processor, prefixes)
    if not text:
        return None, 0.0
    if reuse is not None and (hit := reuse.get(text)) is not None:
        return hit, 0.0
    t0 = time.perf_counter()
    ids = processor.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = ids.to(device)  # [1, Ls]
    pos = torch.arange(ids.shape[1], device=device)[None]
    static = StaticPrefix(
        text=text,
        length=int(ids.shape[1]),
        cache=kv_cache(core(input_ids=ids, position_ids=pos, use_cache=True)),
    )
    if reuse is not None:
        if len(reuse) >= _REUSE_MAX:
            reuse.clear()
        reuse[text] = static
    return static, time.perf_counter() - t0


def _run_prefix(
    core: Any, enc: Any, static: StaticPrefix | None, n_img: int
) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """The item part of the prefix over the static one: (KV cache [B, .., Ls + Lp, ..], mask
    [B, Ls + Lp] over every cached position, next position per row [B]).

    The batch is left-padded after the static part: pads sit between the two, masked out, and
    positions continue from the static length over the real tokens only."""
    import torch

    if static is None:
        prefix_pos, next_pos = _prefix_positions(core, enc)
        out = core(**enc, position_ids=prefix_pos, use_cache=True)
        return kv_cache(out), enc["attention_mask"], next_pos
    mask = enc["attention_mask"]  # [B, Lp]
    cache = copy.deepcopy(static.cache)  # the forward appends to it: keep the original
    if n_img > 1:
        cache.batch_repeat_interleave(n_img)
    full = torch.cat([mask.new_ones(n_img, static.length), mask], dim=1)  # [B, Ls + Lp]
    pos = static.length + (mask.long().cumsum(-1) - 1).clamp(min=0)  # [B, Lp]
    inputs = dict(enc) | {"attention_mask": full}
    out = core(**inputs, position_ids=pos, use_cache=True, **with_cache(core, cache))
    return kv_cache(out), full, static.length + mask.sum(-1)


def packing_pays(hidden: int, prefix_len: int, lengths: list[int], *, trunk: int = 0) -> bool:
    """Whether one packed row of the N questions costs fewer FLOPs than N padded rows.

    Per token and layer, the projections and MLP cost ~26 h^2 and attention ~4 h * keys. Packed:
    T = trunk + sum(lengths - trunk) tokens (the questions' shared start run once) seeing
    Lp + T keys each (the mask hides most, the kernel still computes them); padded:
    N * max(lengths) tokens seeing Lp + max keys. Wide models (the real 2B, h = 2048) gain from
    packing; narrow ones (the tiny and demo models, h < ~330 at the default policy's lengths)
    lose, so they keep the padded rows.
    """
    total, widest = trunk + sum(n - trunk for n in lengths), max(lengths)
    packed = total * (26 * hidden * hidden + 4 * hidden * (prefix_len + total))
    padded = len(lengths) * widest * (26 * hidden * hidden + 4 * hidden * (prefix_len + widest))
    return packed < padded


@dataclass(frozen=True)
class ContinuationPlan:
    """The N questions of one image packed into one row: the tokens every question starts with
    (the trunk, e.g. "Does it violate") once, then each question's remaining tokens back to
    back. T = trunk + sum(lengths - trunk) tokens."""

    ids: torch.Tensor  # [1, T] the trunk, then the questions' remaining token ids back to back
    offsets: torch.Tensor  # [T] position of each token within its own question (trunk included)
    allowed: torch.Tensor  # [T, T] bool: query may see key (trunk or same question, not later)
    last: torch.Tensor  # [N] index of each question's last token (where its answer is read)
    lengths: list[int]  # [N] tokens per question, trunk included
    trunk: int = 0  # leading tokens shared by every question, run once


def _common_start(rows: list[list[int]]) -> int:
    """How many leading tokens every row shares, leaving each row at least one of its own (the
    answer is read at a question's last token, which must be its own)."""
    shortest = min(len(r) for r in rows)
    n = 0
    while n < shortest - 1 and all(r[n] == rows[0][n] for r in rows):
        n += 1
    return n if len(rows) > 1 else 0


def continuation_plan(tokenizer: Any, suffixes: list[str], device: Any) -> ContinuationPlan:
    """Pack the category suffixes into one row: their shared leading tokens once (a trunk every
    question sees), then each question's own tokens with a block-diagonal causal mask."""
    import torch

    rows = tokenizer(suffixes, add_special_tokens=False)["input_ids"]
    trunk = _common_start(rows)
    own = torch.tensor([len(r) - trunk for r in rows])
    # Segment -1 is the trunk; segment i the rest of question i.
    segment = torch.cat(
        [torch.full((trunk,), -1), torch.repeat_interleave(torch.arange(len(rows)), own)]
    )
    starts = trunk + torch.cumsum(own, 0) - own  # [N] where each question's own tokens start
    index = torch.arange(trunk + int(own.sum()))
    own_starts = torch.cat([torch.zeros(trunk, dtype=torch.long), starts[segment[trunk:]]])
    offsets = torch.where(segment < 0, index, trunk + index - own_starts)
    same = (segment[:, None] == segment[None, :]) | (segment[None, :] < 0)
    allowed = same & (index[None, :] <= index[:, None])
    ids = torch.tensor(rows[0][:trunk] + [t for r in rows for t in r[trunk:]], dtype=torch.long)
    return ContinuationPlan(
        ids=ids[None].to(device),
        offsets=offsets.to(device),
        allowed=allowed.to(device),
        last=(starts + own - 1).to(device),
        lengths=[len(r) for r in rows],
        trunk=trunk,
    )


def _continue_packed(
    core: Any,
    enc: Any,
    prefix_mask: torch.Tensor,
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

    n_img = prefix_mask.shape[0]
    width = plan.ids.shape[1]
    ids = plan.ids.expand(n_img, -1)  # [B, T]
    see_prefix = prefix_mask.bool()[:, None, :].expand(-1, width, -1)  # [B, T, Lp]
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
    prefix_mask: torch.Tensor,
    cache: Any,
    next_pos: torch.Tensor,
    tokenizer: Any,
    suffixes: list[str],
    n_cat: int,
) -> tuple[torch.Tensor, int]:
    """The older layout: the cache repeated per category, [B*N, Ls] right-padded questions.
    Returns the [B*N, D] answer states and the tokens run (padding included)."""
    import torch

    device = prefix_mask.device
    n_img = prefix_mask.shape[0]
    # [B, H, Lp, Dh] -> [B*N, H, Lp, Dh], image-major (row b*N + n).
    cache.batch_repeat_interleave(n_cat)

    # The suffix text is the same for every item (only the prefix carries item content).
    suf_ids, suf_mask, suf_len = _suffix_batch(tokenizer, suffixes, device)
    width = suf_ids.shape[1]
    ids = suf_ids.repeat(n_img, 1)  # [B*N, Ls]
    attn = torch.cat(
        [prefix_mask.repeat_interleave(n_cat, 0), suf_mask.repeat(n_img, 1)], dim=1
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
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
) -> dict[str, float]:
    """Reference: each category's whole prompt (image included) tokenized and run on its own,
    the answer read from the model's own LM head. Slow; for tests and the benchmark."""
    import torch

    yes_no = yes_no or answer_token_ids(processor.tokenizer)
    parts = render_prompt_parts(
        processor,
        policy,
        text=item.text,
        ocr_text=item.ocr_text,
        layout=layout,
        media_ocr=item.media_ocr,
    )
    scores: dict[str, float] = {}
    with torch.inference_mode():
        for cid, suffix in zip(policy.ids, parts.suffixes, strict=True):
            enc = _processor_inputs(
                processor, [parts.prefix + suffix], [item.images], model.device, model.dtype
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
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
) -> str:
    """Greedy-decode the model's reply to `question` about one item (rationale, JSON verdict).
    `min_new_tokens` forces a length (benchmarks: a random model stops at once otherwise)."""
    import torch

    messages = prompts.build_messages(
        policy,
        text=item.text,
        ocr_text=item.ocr_text,
        question=question,
        layout=layout,
        media_ocr=item.media_ocr,
    )
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = _processor_inputs(processor, [text], [item.images], model.device, model.dtype)
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
