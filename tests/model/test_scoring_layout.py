"""The "policy" prompt layout (the policy listed once in the system turn, a short question per
category) scores like a naive per-category pass of the same prompts, runs far fewer
continuation tokens than the "question" layout, and is chosen by the model directory."""

from __future__ import annotations

import shutil

import pytest

from model import prompts
from model.backends import ScoringInput
from model.loading import load_backend
from model.scoring import (
    continuation_plan,
    render_prompt_parts,
    score_naive,
    score_shared_prefix,
)
from storage.errors import WardenError
from storage.settings import ModelSettings
from tests.model.conftest import noise_image


def _fp32(path):
    return load_backend(ModelSettings(name=str(path), quant="none", dtype="float32", device="cpu"))


@pytest.mark.parametrize("arch", ["internvl", "qwen2vl"])  # qwen2vl: 3-D M-RoPE positions
def test_policy_layout_shared_prefix_equals_naive(arch, tiny_model_dir, policy, items):
    backend = _fp32(tiny_model_dir(arch))
    m, proc = backend.model, backend.processor
    packed = score_shared_prefix(m, proc, items, policy, packed=True, layout="policy")
    repeated = score_shared_prefix(m, proc, items, policy, packed=False, layout="policy")
    other = score_shared_prefix(m, proc, items, policy, layout="question")
    differs = 0.0
    for item, got, old, q in zip(items, packed, repeated, other, strict=True):
        want = score_naive(m, proc, item, policy, layout="policy")
        for cid in policy.ids:
            assert got[cid] == pytest.approx(want[cid], abs=1e-4), (arch, cid)
            assert old[cid] == pytest.approx(want[cid], abs=1e-4), (arch, cid)
        differs = max(differs, *(abs(got[c] - q[c]) for c in policy.ids))
    assert differs > 1e-4  # the layouts are different prompts: the parameter is not ignored


def test_policy_layout_moves_the_policy_into_the_prefix(tiny_internvl, policy):
    proc = _fp32(tiny_internvl).processor
    tok = proc.tokenizer
    old = render_prompt_parts(proc, policy, text=None, ocr_text="WIN")
    new = render_prompt_parts(proc, policy, text=None, ocr_text="WIN", layout="policy")
    cat = policy.categories[0]
    assert cat.description in new.prefix and cat.description not in new.prefix.split("user")[-1]
    assert all(c.description not in s for c, s in zip(policy.categories, new.suffixes, strict=True))
    assert cat.description in old.suffixes[0] and cat.description not in old.prefix

    def n_tokens(suffixes):
        return sum(len(tok(s, add_special_tokens=False)["input_ids"]) for s in suffixes)

    # The continuation (what every category pays for) is at least 3x shorter.
    assert 3 * n_tokens(new.suffixes) < n_tokens(old.suffixes)
    timings: dict[str, float] = {}
    item = [ScoringInput(noise_image(3), text=None, ocr_text="WIN")]
    b = _fp32(tiny_internvl)
    score_shared_prefix(b.model, proc, item, policy, packed=True, timings=timings, layout="policy")
    # Packed, the questions' shared start ("Does it violate") runs once, not once per category.
    trunk = continuation_plan(tok, new.suffixes, "cpu").trunk
    assert trunk > 0
    want = n_tokens(new.suffixes) - trunk * (len(policy.categories) - 1)
    assert timings["continuation_tokens"] == want


def test_backend_scores_with_the_layout_its_model_directory_declares(
    tiny_internvl, tmp_path, policy
):
    assert prompts.model_layout(tiny_internvl) == "question"  # no file: the default
    declared = tmp_path / "policy-layout"
    shutil.copytree(tiny_internvl, declared)
    prompts.write_model_layout(declared, "policy")
    backend = _fp32(declared)
    assert backend.layout == "policy" and backend.info.prompt_layout == "policy"
    item = ScoringInput(noise_image(5), text="hello", ocr_text="FREE MONEY")
    got = backend.raw_scores([item], policy)[0]
    want = score_naive(backend.model, backend.processor, item, policy, layout="policy")
    for cid in policy.ids:
        assert got[cid] == pytest.approx(want[cid], abs=1e-4)


@pytest.mark.parametrize(
    "content", ['{"layout": "sideways"}', "[1, 2]", "{not json", '{"other": 1}']
)
def test_a_bad_layout_file_is_a_clear_error(tmp_path, content):
    (tmp_path / prompts.LAYOUT_FILE).write_text(content)
    with pytest.raises(WardenError, match="layout|JSON"):
        prompts.model_layout(tmp_path)
    with pytest.raises(WardenError, match="sideways"):
        prompts.write_model_layout(tmp_path, "sideways")  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["internvl", "llava", "idefics3"])
def test_static_prefix_runs_once_and_is_reused_across_calls(arch, tiny_model_dir, policy, items):
    """The system turn (with the whole policy in the "policy" layout) is run once; later
    batches reuse its KV cache and still score like the naive pass."""
    backend = _fp32(tiny_model_dir(arch))
    m, proc = backend.model, backend.processor
    reuse: dict = {}
    first: dict[str, float] = {}
    second: dict[str, float] = {}
    score_shared_prefix(m, proc, items[:1], policy, layout="policy", reuse=reuse, timings=first)
    got = score_shared_prefix(
        m, proc, items[1:], policy, layout="policy", reuse=reuse, timings=second
    )
    assert len(reuse) == 1
    assert first["static_tokens"] == second["static_tokens"] > 100  # the policy is in it
    assert first["static_s"] > 0 and second["static_s"] == 0  # reused, not run again
    for item, row in zip(items[1:], got, strict=True):
        want = score_naive(m, proc, item, policy, layout="policy")
        for cid in policy.ids:
            assert row[cid] == pytest.approx(want[cid], abs=1e-4), (arch, cid)


def test_timings_give_process_cpu_time_beside_wall_time(tiny_internvl, policy, items):
    """On a CPU shared with other jobs, wall time alone cannot tell waiting for a core from
    work: every timed span comes with the process's CPU seconds over it, the static prefix's
    counted in the call that ran it."""
    backend = _fp32(tiny_internvl)
    reuse: dict = {}
    for batch in (items[:1], items[1:]):
        t: dict[str, float] = {}
        score_shared_prefix(
            backend.model, backend.processor, batch, policy, layout="policy", reuse=reuse, timings=t
        )
        assert t["prefix_cpu_s"] > 0 and t["continuation_cpu_s"] > 0, t


def test_no_static_prefix_where_positions_span_the_whole_sequence(tiny_model_dir, policy, items):
    """Qwen2-VL's 3-D M-RoPE positions are computed over the whole prompt: no split there."""
    backend = _fp32(tiny_model_dir("qwen2vl"))
    timings: dict[str, float] = {}
    reuse: dict = {}
    score_shared_prefix(
        backend.model, backend.processor, items, policy, reuse=reuse, timings=timings
    )
    assert timings["static_tokens"] == 0 and reuse == {}


def test_backend_keeps_the_static_prefix_between_batches(tiny_internvl, policy, items):
    backend = _fp32(tiny_internvl)
    backend.raw_scores(items[:1], policy)
    kept = dict(backend._static)
    backend.raw_scores(items[1:], policy)
    assert len(kept) == 1 and backend._static == kept  # the same entry, not recomputed
