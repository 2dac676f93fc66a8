"""The transformers backend through the real loader: verdicts, versions, cache, swap, adapters."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from model import loading
from model.backends import Backend, ScoringInput
from model.calibration import Calibration, CategoryCalibration
from model.loading import live_backend, load_backend, model_version_id, swap_live
from storage.errors import WardenError
from storage.settings import ModelSettings
from tests.model.conftest import noise_image


def _settings(path, **kw) -> ModelSettings:
    return ModelSettings(name=str(path), device="cpu", **kw)


def test_verdicts_have_every_category_thresholds_and_versions(tiny_internvl, policy, items):
    backend = load_backend(_settings(tiny_internvl))
    assert isinstance(backend, Backend)
    # CPU default: unquantized, bf16 where the CPU has it in hardware.
    assert backend.info.quant == "none"
    assert backend.info.dtype == ("bfloat16" if loading.cpu_bf16_fast() else "float32")
    verdicts = backend.score(items, policy)
    assert len(verdicts) == len(items)
    for v in verdicts:
        assert set(v.scores) == set(policy.ids)
        assert all(0.0 <= s <= 1.0 for s in v.scores.values())
        assert v.flagged == policy.flagged(v.scores)
        assert v.policy_version == policy.version
        assert v.model_version.startswith(f"{tiny_internvl.name}@")
        assert v.latency_ms > 0
        assert v.raw_reply is None and v.parse_ok is None


def test_cache_per_settings_and_stable_versions(tiny_model_dir, policy):
    a = load_backend(_settings(tiny_model_dir("internvl")))
    assert load_backend(_settings(tiny_model_dir("internvl"))) is a
    other_dtype = "bfloat16" if a.info.dtype == "float32" else "float32"
    assert load_backend(_settings(tiny_model_dir("internvl"), dtype=other_dtype)) is not a
    # Same shapes, other weights: another version; the same dir: the same version.
    other = tiny_model_dir("internvl", seed=1)
    assert model_version_id(str(other)) != a.model_version
    assert model_version_id(str(tiny_model_dir("internvl"))) == a.model_version
    assert model_version_id(str(other), name="r7") == "r7"


def test_rationale_from_random_model_is_stored_raw_and_counted_unparsable(tiny_internvl, policy):
    from model.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(tiny_internvl), device="cpu", max_new_tokens=24)
    item = ScoringInput(image=noise_image(3), ocr_text="free money")
    [v] = backend.score([item], policy, rationale=True)
    assert v.parse_ok is False
    assert v.raw_reply is not None and v.rationale is None
    assert set(v.scores) == set(policy.ids)


def test_swap_live_keeps_in_flight_calls_on_the_old_model(tiny_model_dir, policy):
    old = swap_live(_settings(tiny_model_dir("internvl")))
    assert live_backend() is old
    started, release, result = threading.Event(), threading.Event(), {}
    item = ScoringInput(image=noise_image(4))

    def slow_call() -> None:
        backend = live_backend()  # a request picks its backend once
        started.set()
        release.wait(30)
        result["v"] = backend.score([item], policy)[0]

    t = threading.Thread(target=slow_call)
    t.start()
    started.wait(30)
    new = swap_live(_settings(tiny_model_dir("llava")))
    release.set()
    t.join(60)
    assert result["v"].model_version == old.model_version
    assert live_backend() is new and new.model_version != old.model_version
    assert live_backend().score([item], policy)[0].model_version == new.model_version


def test_swap_live_accepts_a_registry_entry(tiny_internvl):
    class Entry:  # the shape of training.registry.ModelVersionInfo
        name, uri, adapter_uri = "r1", str(tiny_internvl), None

    assert swap_live(Entry()).model_version == "r1"


def test_lora_adapter_loads_on_top_and_changes_scores(tiny_internvl, policy, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_internvl)
    # init_lora_weights=False: random B, so the adapter really changes the outputs.
    cfg = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, cfg).save_pretrained(tmp_path / "adapter")
    plain = load_backend(_settings(tiny_internvl, dtype="float32"))
    tuned = load_backend(
        _settings(tiny_internvl, dtype="float32", adapter=str(tmp_path / "adapter"))
    )
    assert tuned.model_version.startswith(plain.model_version + "+adapter@")
    item = [ScoringInput(image=noise_image(6), ocr_text="x")]
    a, b = plain.score(item, policy)[0].scores, tuned.score(item, policy)[0].scores
    assert max(abs(a[c] - b[c]) for c in policy.ids) > 1e-4


def test_calibration_is_applied_and_raw_scores_kept(tiny_internvl, policy):
    from model.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(tiny_internvl), device="cpu")
    cal = Calibration({policy.ids[0]: CategoryCalibration("platt", a=1.0, b=5.0, n=50)})
    backend.set_calibration(cal)
    [v] = backend.score([ScoringInput(image=noise_image(7))], policy)
    raw = v.signals["raw_scores"]
    assert v.scores[policy.ids[0]] > raw[policy.ids[0]] + 0.3  # b=5 pushes it up
    assert v.scores[policy.ids[1]] == raw[policy.ids[1]]  # uncalibrated: unchanged
    assert policy.ids[0] in v.flagged


def test_user_errors_are_clear(tmp_path):
    with pytest.raises(WardenError, match="no such directory"):
        load_backend(ModelSettings(name=str(tmp_path / "missing")))
    with pytest.raises(WardenError, match="no config.json"):
        load_backend(ModelSettings(name=str(tmp_path)))
    if loading.cuda_device_count() == 0:
        with pytest.raises(WardenError, match="no CUDA device"):
            loading.resolve_device("cuda")
        assert loading.resolve_device("auto") == "cpu"
        assert loading.resolve_quant("auto", "cpu") == "none"
    assert loading.resolve_quant("auto", "cuda") == "4bit"
    assert loading.resolve_quant("auto", "auto") == "4bit"  # several GPUs


def test_cpu_computes_in_bf16_only_with_hardware_bf16(monkeypatch):
    import torch

    # The probe says whether the CPU has bf16 instructions (the kernel's flags agree);
    # emulated bf16, which oneDNN also calls "supported" on any AVX512 CPU, is slower than fp32.
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        flags = set(cpuinfo.read_text().split())
        assert loading.cpu_bf16_fast() == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert loading.cpu_bf16_fast() == bool(
        torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    )
    for fast, dtype in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(loading, "cpu_bf16_fast", lambda fast=fast: fast)
        assert loading.resolve_dtype("auto", "cpu") == dtype
        assert loading.resolve_dtype("float16", "cpu") == "float16"  # asked for: kept
