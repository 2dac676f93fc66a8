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
    [(what, result)] = readme_table.scoring_rows({"device": "cpu", "real_shape_memory": mem})
    assert result.startswith("measured peak RSS on CPU")
    assert "computed from tensor sizes, not measured" in result
