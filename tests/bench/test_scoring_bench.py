"""bench/scoring.py's figures say what they are: the parameter count is read from the model it
built, memory is measured peak RSS, and weight bytes summed from tensor sizes are labelled
computed. A small model of the same architecture stands in for the 2B shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import readme_table, scoring

SMALL_VISION = {
    "hidden_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 128,
}
SMALL_TEXT = {
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
}


@pytest.fixture(scope="module")
def small_real_arch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("scoring") / "internvl-small"
    return out, scoring.build_real_shape(out, vision=SMALL_VISION, text=SMALL_TEXT)


def test_parameter_count_is_the_built_models_with_the_tied_head_once(
    small_real_arch: tuple[Path, int],
) -> None:
    from transformers import InternVLForConditionalGeneration

    path, counted = small_real_arch
    model = InternVLForConditionalGeneration.from_pretrained(path)
    head, embed = model.lm_head.weight, model.get_input_embeddings().weight
    assert head.data_ptr() == embed.data_ptr()  # tied, as in the real checkpoint
    unique = sum(p.numel() for p in model.parameters())
    every = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert counted == unique
    assert every - unique == head.numel()  # the stale 2,348,273,664 counted the head twice


@pytest.mark.slow
def test_memory_reports_measured_peak_rss_and_labels_weight_bytes_computed(
    small_real_arch: tuple[Path, int],
) -> None:
    path, _ = small_real_arch
    mem = scoring._memory(path)
    q4, bf = mem["4bit"], mem["none"]
    assert "error" not in q4 and "error" not in bf, (q4.get("error"), bf.get("error"))
    for m in (q4, bf):
        assert "weight_bytes" not in m  # a computation must not read as a measurement
        assert m["peak_rss_bytes"] >= m["rss_after_load_bytes"] > 0
    assert q4["weights_bytes_computed"] < bf["weights_bytes_computed"]
    assert "weights_ratio_4bit_over_bf16" not in mem
    summary = mem["summary"]
    assert summary["measured"].startswith("peak RSS on CPU")
    assert summary["peak_rss_4bit_bytes"] == q4["peak_rss_bytes"]
    assert summary["peak_rss_bf16_bytes"] == bf["peak_rss_bytes"]
    assert summary["peak_rss_ratio_4bit_over_bf16"] == pytest.approx(
        q4["peak_rss_bytes"] / bf["peak_rss_bytes"]
    )
    # A scoring pass reads every mapped weight: the serving figure is taken after one.
    for m in (q4, bf):
        assert m["peak_rss_after_scoring_bytes"] >= m["peak_rss_bytes"]
        assert m["rss_after_scoring_bytes"] > 0 and m["cpu_scoring_s"] > 0
    assert summary["peak_rss_serving_ratio_4bit_over_bf16"] == pytest.approx(
        q4["peak_rss_after_scoring_bytes"] / bf["peak_rss_after_scoring_bytes"]
    )
    [(what, result)] = readme_table.scoring_rows({"device": "cpu", "real_shape_memory": mem})
    assert result.startswith("measured peak RSS on CPU")
    assert "computed from tensor sizes, not measured" in result
    assert "after scoring one image: peak RSS" in result


def test_readme_row_gives_the_policy_layout_and_the_prefill_continuation_split() -> None:
    split = {"prefix_ms_per_image": 9000.0, "continuation_ms_per_image": 4000.0}
    big = {
        "dtype": "bfloat16",
        "images": 1,
        "categories": 11,
        "ratio_a_over_b": 6.0,
        "ratio_a_over_c": 3.0,
        "a_split_packed": split,
        "policy_layout": {
            "a_over_question_layout_a": 1.5,
            "ratio_a_over_b": 12.0,
            "a_over_c_question_layout": 4.5,
            "a_split_packed": split | {"continuation_ms_per_image": 1500.0},
        },
    }
    [(_, result)] = readme_table.scoring_rows(
        {"real_shape_internvl35_2b": big, "real_shape_parameters": 2_037_108_736}
    )
    assert "6.0x naive, 3.0x generation (prefill 9.0 s + continuation 4.0 s per image)" in result
    assert "'policy' prompt layout 1.50x as fast: 12.0x its own naive pass" in result
    assert "4.5x generation (prefill 9.0 s + continuation 1.5 s per image)" in result


def test_both_layouts_are_timed_in_one_alternating_run(small_real_arch: tuple[Path, int]) -> None:
    """The layouts' speeds are compared within one loop, each going first on every other
    image, wall and CPU time per span: separate runs minutes apart on a shared CPU measured
    the policy layout's prefill at 1.7x the question layout's for the same item tokens."""
    from model.loading import load_backend
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY, ModelSettings

    path, _ = small_real_arch
    b = load_backend(ModelSettings(name=str(path), device="cpu", dtype="float32"))
    got = scoring.compare_layouts(b.model, b.processor, load_policy(DEFAULT_POLICY), 3)
    assert got["images"] == 3
    assert got["first_per_image"] == ["question", "policy", "question"]
    for layout in ("question", "policy"):
        for span in ("prefix", "continuation", "prefix_cpu", "continuation_cpu"):
            assert got[layout][f"{span}_ms_per_image"] > 0, (layout, span)

    def total(layout: str, cpu: str = "") -> float:
        m = got[layout]
        return m[f"prefix{cpu}_ms_per_image"] + m[f"continuation{cpu}_ms_per_image"]

    assert got["policy_over_question_speed"] == pytest.approx(total("question") / total("policy"))
    assert got["policy_over_question_speed_cpu"] == pytest.approx(
        total("question", "_cpu") / total("policy", "_cpu")
    )
    assert got["prefill_policy_over_question"] == pytest.approx(
        got["policy"]["prefix_ms_per_image"] / got["question"]["prefix_ms_per_image"]
    )


def test_readme_row_prefers_the_same_run_layout_comparison() -> None:
    split = {"prefix_ms_per_image": 2500.0, "continuation_ms_per_image": 2800.0}
    big = {
        "dtype": "bfloat16",
        "images": 1,
        "categories": 11,
        "ratio_a_over_b": 6.0,
        "ratio_a_over_c": 3.0,
        "a_split_packed": split,
        "policy_layout": {
            "a_over_question_layout_a": 0.81,  # separate runs, different loads
            "ratio_a_over_b": 12.0,
            "a_over_c_question_layout": 4.5,
            "a_split_packed": split | {"continuation_ms_per_image": 1100.0},
        },
        "layouts_same_run": {"policy_over_question_speed": 1.47},
    }
    [(_, result)] = readme_table.scoring_rows(
        {"real_shape_internvl35_2b": big, "real_shape_parameters": 2_037_108_736}
    )
    assert "'policy' prompt layout 1.47x as fast in one alternating run: 12.0x" in result
    assert "0.81" not in result


def test_readme_row_gives_cpu_time_beside_wall_time_when_recorded() -> None:
    """Wall time on a shared CPU includes waiting for a core: the row gives the CPU time and
    the CPU-time ratio beside them."""
    split = {
        "prefix_ms_per_image": 5600.0,
        "continuation_ms_per_image": 5700.0,
        "prefix_cpu_ms_per_image": 2600.0,
        "continuation_cpu_ms_per_image": 2800.0,
    }
    big = {
        "dtype": "bfloat16",
        "images": 1,
        "categories": 11,
        "ratio_a_over_b": 4.7,
        "ratio_a_over_b_cpu": 5.8,
        "ratio_a_over_c": 3.0,
        "a_split_packed": split,
    }
    [(_, result)] = readme_table.scoring_rows(
        {"real_shape_internvl35_2b": big, "real_shape_parameters": 2_037_108_736}
    )
    assert "4.7x naive (5.8x in CPU time), 3.0x generation" in result
    assert "(prefill 5.6 s + continuation 5.7 s per image; CPU time 2.6 s + 2.8 s)" in result
