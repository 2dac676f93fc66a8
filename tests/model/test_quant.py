"""4-bit / 8-bit through bitsandbytes on the CPU, with the vision side left unquantized."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch

from model import loading
from model.loading import load_backend, unquantized_modules
from storage.settings import ModelSettings
from tests.model.conftest import ALL_ARCHS

EXPECTED_SKIPS = {
    "internvl": {"model.vision_tower", "model.multi_modal_projector", "lm_head"},
    "qwen2vl": {"model.visual", "lm_head"},
    "llava": {"model.vision_tower", "model.multi_modal_projector", "lm_head"},
    "idefics3": {"model.vision_model", "model.connector", "lm_head"},
}


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_unquantized_modules_come_from_the_model_class(arch, tiny_model_dir):
    from transformers import AutoConfig

    assert (
        set(unquantized_modules(AutoConfig.from_pretrained(tiny_model_dir(arch))))
        == EXPECTED_SKIPS[arch]
    )


@pytest.mark.parametrize("arch", ["internvl", "qwen2vl"])
def test_4bit_on_cpu_quantizes_the_language_model_only_and_still_scores(
    arch, tiny_model_dir, policy, items
):
    path = str(tiny_model_dir(arch))
    q4 = load_backend(ModelSettings(name=path, quant="4bit", device="cpu"))
    bf16 = load_backend(ModelSettings(name=path, quant="none", device="cpu"))
    assert q4.info.quant == "4bit" and q4.info.device == "cpu"
    four_bit = {n: m for n, m in q4.model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert four_bit, "nothing was quantized"
    skips = EXPECTED_SKIPS[arch]
    assert not any(n.startswith(tuple(skips)) for n in four_bit)
    assert all(m.support_avx512bf16_for_cpu is False for m in four_bit.values())
    assert q4.info.weight_bytes < bf16.info.weight_bytes
    a = q4.score(items, policy)
    b = bf16.score(items, policy)
    for va, vb in zip(a, b, strict=True):
        assert set(va.scores) == set(policy.ids)
        # Random tiny weights: NF4 noise moves scores a little, never to another regime.
        assert max(abs(va.scores[c] - vb.scores[c]) for c in policy.ids) < 0.1


def test_8bit_on_cpu_loads_and_scores(tiny_internvl, policy, items):
    q8 = load_backend(ModelSettings(name=str(tiny_internvl), quant="8bit", device="cpu"))
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in q8.model.modules())
    # Unquantized modules keep the CPU's compute dtype (bf16 only with hardware bf16).
    assert q8.model.lm_head.weight.dtype == getattr(torch, q8.info.dtype)
    assert q8.info.dtype == ("bfloat16" if loading.cpu_bf16_fast() else "float32")
    v = q8.score(items[:1], policy)[0]
    assert all(0.0 <= s <= 1.0 for s in v.scores.values())
