"""The packed continuation (all category questions of an image in one row, a block-diagonal
mask, no KV-cache copies, no padding) scores exactly like a naive per-category pass, and like
the older layout (the cache repeated once per category, padded questions)."""

from __future__ import annotations

import pytest

from model.backends import ScoringInput
from model.loading import load_backend
from model.scoring import (
    continuation_plan,
    packing_pays,
    render_prompt_parts,
    score_naive,
    score_shared_prefix,
)
from storage.settings import ModelSettings
from tests.model.conftest import ALL_ARCHS, noise_image


def _fp32(path):
    return load_backend(ModelSettings(name=str(path), quant="none", dtype="float32", device="cpu"))


@pytest.mark.parametrize("arch", ALL_ARCHS)  # qwen2vl: 3-D M-RoPE positions
def test_packed_continuation_equals_a_naive_per_category_pass(arch, tiny_model_dir, policy, items):
    backend = _fp32(tiny_model_dir(arch))
    packed = score_shared_prefix(backend.model, backend.processor, items, policy, packed=True)
    repeated = score_shared_prefix(backend.model, backend.processor, items, policy, packed=False)
    for item, got, old in zip(items, packed, repeated, strict=True):
        want = score_naive(backend.model, backend.processor, item, policy)
        for cid in policy.ids:
            assert got[cid] == pytest.approx(want[cid], abs=1e-4), (arch, cid)
            assert got[cid] == pytest.approx(old[cid], abs=1e-4), (arch, cid)


@pytest.mark.parametrize("layout", ["question", "policy"])
def test_packed_plan_has_no_padding_and_one_row_per_image(tiny_internvl, policy, layout):
    """The continuation runs the questions' shared start once, then each question's own
    tokens: trunk + sum(lengths - trunk) tokens per image, not categories x longest."""
    backend = _fp32(tiny_internvl)
    tok = backend.processor.tokenizer
    parts = render_prompt_parts(backend.processor, policy, text=None, ocr_text="WIN", layout=layout)
    rows = [tok(s, add_special_tokens=False)["input_ids"] for s in parts.suffixes]
    lengths = [len(r) for r in rows]
    plan = continuation_plan(tok, parts.suffixes, "cpu")
    trunk = plan.trunk
    # Every question starts with the same words ("Policy category", "Does it violate"): those
    # tokens run once, and they are exactly the shared ones (the next token differs somewhere).
    assert trunk > 0
    assert all(r[:trunk] == rows[0][:trunk] for r in rows)
    assert len({r[trunk] for r in rows}) > 1
    own = [n - trunk for n in lengths]
    assert plan.ids.shape == (1, trunk + sum(own))
    assert plan.ids[0].tolist() == rows[0][:trunk] + [t for r in rows for t in r[trunk:]]
    assert plan.lengths == lengths
    starts = [trunk + sum(own[:i]) for i in range(len(own))]
    assert plan.last.tolist() == [s + n - 1 for s, n in zip(starts, own, strict=True)]
    # Each question's own tokens continue its positions after the trunk.
    assert plan.offsets[:trunk].tolist() == list(range(trunk))
    assert all(int(plan.offsets[s]) == trunk for s in starts)
    # A question's token sees the trunk and its own earlier tokens, nothing of the others.
    allowed = plan.allowed
    a, b = starts[1], starts[2]
    assert all(bool(allowed[b, t]) for t in range(trunk))
    assert not bool(allowed[trunk - 1, a])  # the trunk sees no question's own tokens
    assert bool(allowed[trunk - 1, 0]) and (trunk == 1 or not bool(allowed[0, trunk - 1]))
    assert bool(allowed[a + 1, a]) and not bool(allowed[a, a + 1])
    assert bool(allowed[a, a]) and bool(allowed[b, b])
    assert not bool(allowed[b, a]) and not bool(allowed[b, b - 1])  # b - 1: question 1's end
    # Costed with the trunk: cheaper than the same questions each with their own start.
    assert plan.ids.shape[1] < sum(lengths)


def test_no_trunk_when_the_questions_share_no_start(tiny_internvl):
    tok = _fp32(tiny_internvl).processor.tokenizer
    plan = continuation_plan(tok, ["Yes or no?", "No or yes?"], "cpu")
    assert plan.trunk == 0
    assert plan.offsets.tolist() == [
        *range(len(tok("Yes or no?", add_special_tokens=False)["input_ids"])),
        *range(len(tok("No or yes?", add_special_tokens=False)["input_ids"])),
    ]
    # A single question keeps all its tokens its own (nothing to share).
    assert continuation_plan(tok, ["Yes or no?"], "cpu").trunk == 0


def test_packed_continuation_of_one_image_equals_its_row_in_a_batch(tiny_model_dir, policy):
    backend = _fp32(tiny_model_dir("qwen2vl"))
    batch = [
        ScoringInput(noise_image(7), text="a much longer caption than the other one", ocr_text="x"),
        ScoringInput(noise_image(8, (90, 200)), text=None, ocr_text=None),
    ]
    rows = score_shared_prefix(backend.model, backend.processor, batch, policy)
    for item, row in zip(batch, rows, strict=True):
        alone = score_shared_prefix(backend.model, backend.processor, [item], policy)[0]
        assert max(abs(alone[c] - row[c]) for c in policy.ids) < 1e-4


def test_timings_split_prefix_and_continuation_and_count_no_padding(tiny_internvl, policy, items):
    backend = _fp32(tiny_internvl)
    tok = backend.processor.tokenizer
    parts = render_prompt_parts(backend.processor, policy, text=None, ocr_text=None)
    lengths = [len(tok(s, add_special_tokens=False)["input_ids"]) for s in parts.suffixes]
    trunk = continuation_plan(tok, parts.suffixes, "cpu").trunk
    packed: dict[str, float] = {}
    repeated: dict[str, float] = {}
    score_shared_prefix(
        backend.model, backend.processor, items, policy, packed=True, timings=packed
    )
    score_shared_prefix(
        backend.model, backend.processor, items, policy, packed=False, timings=repeated
    )
    assert packed["continuation_tokens"] == (trunk + sum(n - trunk for n in lengths)) * len(items)
    assert repeated["continuation_tokens"] == max(lengths) * len(lengths) * len(items)
    assert packed["prefix_s"] > 0 and packed["continuation_s"] > 0


def test_bench_reports_prefix_and_continuation_for_both_layouts(tiny_internvl, policy):
    from bench import scoring as bench

    backend = _fp32(tiny_internvl)
    got = bench.measure(backend.model, backend.processor, policy, 1, pipeline_too=False)
    assert got["question_tokens_sum"] == sum(got["question_tokens"])
    assert got["prefix_tokens"] > 0
    packed, repeated = got["a_split_packed"], got["a_split_repeated"]
    trunk = got["question_trunk_tokens"]
    assert trunk > 0
    assert packed["continuation_tokens_per_image"] == got["question_tokens_sum"] - trunk * (
        len(policy.categories) - 1
    )
    assert repeated["continuation_tokens_per_image"] == max(got["question_tokens"]) * len(
        policy.categories
    )
    for split in (packed, repeated):
        assert split["prefix_ms_per_image"] > 0 and split["continuation_ms_per_image"] > 0
    assert {"ratio_a_over_b", "ratio_a0_over_b", "ratio_a0_over_c"} <= set(got)


@pytest.mark.parametrize("bad", ["3", "a,b", "0,4", "3,4,5"])
def test_bench_layers_flag_rejects_bad_input_with_a_usage_error(bad, capsys):
    from bench import scoring as bench

    with pytest.raises(SystemExit) as exc:
        bench.main(["--layers", bad, "--results", "/nonexistent-dir/x.json"])
    assert exc.value.code == 2
    assert "--layers" in capsys.readouterr().err


def test_layout_follows_the_model_width(tiny_internvl, policy):
    """Packing trades padding for attention over the other questions' keys: it pays on the real
    2B's width (h = 2048), not on the tiny / demo widths, and never when nothing is padded."""
    backend = _fp32(tiny_internvl)
    tok = backend.processor.tokenizer
    parts = render_prompt_parts(backend.processor, policy, text=None, ocr_text="WIN")
    lengths = [len(tok(s, add_special_tokens=False)["input_ids"]) for s in parts.suffixes]
    assert packing_pays(2048, 324, lengths)
    assert not packing_pays(64, 132, lengths)
    assert not packing_pays(2048, 324, [max(lengths)] * len(lengths))
    # The default (auto) call scores like both explicit layouts.
    item = [ScoringInput(noise_image(4), text=None, ocr_text="WIN")]
    auto = score_shared_prefix(backend.model, backend.processor, item, policy)[0]
    packed = score_shared_prefix(backend.model, backend.processor, item, policy, packed=True)[0]
    assert max(abs(auto[c] - packed[c]) for c in policy.ids) < 1e-4
