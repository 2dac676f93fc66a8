"""Load VLMs: resolve device / dtype / quantization, keep one loaded model per process, swap live.

`load_backend(settings)` returns a cached `TransformersBackend` for (path, quant, dtype,
device, adapter); `load_target(entry)` does so for a registry version (its name as the model
version, its calibration). `live_backend(settings, database_url=...)` is what a serving process
scores with: it asks the registry (`model.live`) which version is live every few seconds and
`swap_live`s to a new one atomically under a lock: calls already running finish on the old
model; the next call gets the new one. A registry it cannot read is an error, never a fallback.

Defaults: on CUDA, 4-bit NF4 with double quantization and bf16 compute, vision tower,
projector and LM head left unquantized (their module names come from the model class, so any
architecture works); on a CPU, unquantized (4-bit still works when asked), in bf16 where the
CPU does it in hardware and float32 elsewhere (`cpu_bf16_fast`). Several CUDA devices:
`device_map="auto"` spreads the layers.

Run: warden model info OpenGVLab/InternVL3_5-2B-HF --quant 4bit
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from storage.errors import WardenError
from storage.settings import ASSETS_DIR, ModelSettings

if TYPE_CHECKING:
    from model.backends import Backend
    from model.transformers_backend import TransformersBackend
    from storage.policy import Policy

log = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "OpenGVLab/InternVL3_5-2B-HF"
# `WARDEN_MODEL__NAME=demo`: the small checkpoint trained by `training/` and shipped in assets/.
DEMO_MODEL_DIR = ASSETS_DIR / "model" / "demo"

Quant = Literal["4bit", "8bit", "none"]
# Children of the core model that are the language model itself; everything else at that
# level (vision tower, projector / connector / merger) is kept unquantized.
_LANGUAGE_CHILDREN = {"language_model", "text_model", "lm", "llm"}


@dataclass(frozen=True)
class LoadPlan:
    """What `load_model` will do, decided before any weight is read."""

    path: str
    device: str  # "cpu", "cuda", "cuda:1", or "auto" (several GPUs, device_map="auto")
    dtype: str  # "bfloat16" | "float16" | "float32"
    quant: Quant
    adapter: str | None

    @property
    def cache_key(self) -> tuple[str, str, str, str, str | None]:
        return (self.path, self.quant, self.dtype, self.device, self.adapter)


def resolve_model_path(name: str) -> str:
    """A local directory (absolute) or a hub id. "demo" is the checkpoint in assets/."""
    if name == "demo":
        if not (DEMO_MODEL_DIR / "config.json").exists():
            raise WardenError(
                f"the demo model is not built yet ({DEMO_MODEL_DIR} has no config.json); "
                "train it with `warden train demo`, or set WARDEN_MODEL__NAME to a model "
                "directory (`warden model make-tiny DIR` builds a tiny random one)"
            )
        return str(DEMO_MODEL_DIR)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise WardenError(f"{path} is not a model directory (no config.json)")
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise WardenError(f"model {name!r}: no such directory, and not a hub id (owner/name)")
    return name


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' on one GPU, 'auto' (device_map) on several, else 'cpu'."""
    n_gpu = cuda_device_count()
    if device == "auto":
        if n_gpu > 1:
            return "auto"
        return "cuda" if n_gpu == 1 else "cpu"
    if device.startswith("cuda") and n_gpu == 0:
        raise WardenError(f"device {device!r} asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise WardenError(f"device {device!r}: use auto, cpu, cuda or cuda:N")
    return device


def resolve_quant(quant: str, device: str) -> Quant:
    """'auto' -> 4-bit on CUDA (it saves memory and bnb's kernels are fast there), none on CPU:
    there bitsandbytes 4-bit costs MORE memory (real-shape InternVL3.5-2B, measured peak RSS
    4.58 GiB 4-bit vs 1.02 GiB bf16; bench/scoring.py)."""
    if quant == "auto":
        return "none" if device == "cpu" else "4bit"
    if quant not in ("4bit", "8bit", "none"):
        raise WardenError(f"quant {quant!r}: use auto, 4bit, 8bit or none")
    return quant  # type: ignore[return-value]


@functools.cache
def cpu_bf16_fast() -> bool:
    """True when this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX). Without it bf16 is
    emulated and slower than float32, so such a CPU computes in float32:
    - 2-core AVX2-only EPYC: a 1024x1024 bf16 matmul 3.59 s against 0.034 s in fp32, a demo
      post-training step 5 s against ~0.6 s;
    - 2-core AVX512 Xeon without AVX512-BF16 (Ice Lake): a 512x512 matmul 9.1 ms against
      2.4 ms, demo pre-training 7 samples/s against 18 in float32. oneDNN calls bf16
      "supported" on any AVX512 CPU (it emulates it), so its answer is not the test."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # a torch without the probes (or not x86)
        return False


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto' -> bf16 (CPU with hardware bf16, `cpu_bf16_fast`, and CUDA that supports it),
    else float32 on a CPU and fp16 on CUDA."""
    if dtype != "auto":
        return dtype
    if device == "cpu":
        return "bfloat16" if cpu_bf16_fast() else "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def plan_load(settings: ModelSettings) -> LoadPlan:
    device = resolve_device(settings.device)
    adapter = str(Path(settings.adapter).expanduser().resolve()) if settings.adapter else None
    if adapter and not Path(adapter).is_dir():
        raise WardenError(f"adapter {settings.adapter!r} is not a directory (a PEFT adapter)")
    return LoadPlan(
        path=resolve_model_path(settings.name),
        device=device,
        dtype=resolve_dtype(settings.dtype, device),
        quant=resolve_quant(settings.quant, device),
        adapter=adapter,
    )


def unquantized_modules(config: Any) -> list[str]:
    """Full module names to keep out of bitsandbytes: the vision side and the LM head.

    Computed from the model class itself (built on the meta device, no memory): every child
    of the core model that is not the language model (InternVL: model.vision_tower,
    model.multi_modal_projector; Qwen2-VL: model.visual; LLaVA: model.vision_tower,
    model.multi_modal_projector; Idefics3: model.vision_model, model.connector), plus lm_head.
    """
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        skeleton = AutoModelForImageTextToText.from_config(config)
    core = getattr(skeleton, "model", None)
    names = []
    if core is not None:
        names = [f"model.{n}" for n, _ in core.named_children() if n not in _LANGUAGE_CHILDREN]
    for name, _ in skeleton.named_children():
        if name != "model":
            names.append(name)  # lm_head (and any other head)
    return names


def quantization_config(quant: Quant, compute_dtype: Any, skip: list[str]) -> Any:
    from transformers import BitsAndBytesConfig

    if quant == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
            llm_int8_skip_modules=skip,
        )
    if quant == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return None


def _fix_cpu_4bit(model: Any) -> int:
    """bnb's packed CPU path for Linear4bit is very slow on long inputs in eval mode (FACTS)."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    n = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def load_model(plan: LoadPlan) -> tuple[Any, Any]:
    """(model in eval mode, processor) as `plan` says; the adapter, if any, on top."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    dtype = getattr(torch, plan.dtype)
    try:
        config = AutoConfig.from_pretrained(plan.path)
        processor = AutoProcessor.from_pretrained(plan.path)
    except OSError as exc:
        raise WardenError(f"cannot load model {plan.path!r}: {exc}") from exc
    kwargs: dict[str, Any] = {"dtype": dtype}
    if plan.quant != "none":
        kwargs["quantization_config"] = quantization_config(
            plan.quant, dtype, unquantized_modules(config)
        )
    if plan.device == "auto":
        kwargs["device_map"] = "auto"  # several GPUs: accelerate spreads the layers
    else:
        kwargs["device_map"] = plan.device if plan.device != "cuda" else "cuda:0"
    model = AutoModelForImageTextToText.from_pretrained(plan.path, **kwargs)
    if plan.quant == "4bit" and plan.device == "cpu":
        _fix_cpu_4bit(model)
    if plan.adapter:
        model = _apply_adapter(model, plan)
    model.eval()
    return model, processor


def _apply_adapter(model: Any, plan: LoadPlan) -> Any:
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, plan.adapter, is_trainable=False)
    if plan.quant == "none":
        # Exact on an unquantized base; on a 4/8-bit base merging is lossy (FACTS), so the
        # LoRA layers stay separate there.
        model = model.merge_and_unload()
    return model


def _short_hash(parts: list[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:10]


def _dir_fingerprint(path: Path, names: tuple[str, ...]) -> str:
    """Hash of a checkpoint's config, weight index and weight files, cheap even for GBs.

    Each weight file contributes its size, its safetensors header (every tensor's name,
    dtype, shape, offsets) and 64 strided 64 KiB samples of its bytes: two trainings of the
    same shapes differ in the samples, and nothing near a full read of the weights is needed.
    """
    parts: list[bytes] = []
    for name in names:
        f = path / name
        if f.exists():
            parts.append(name.encode() + f.read_bytes())
    weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    for f in weights:
        size = f.stat().st_size
        chunk = 1 << 16
        with f.open("rb") as fh:
            head = b""
            if f.suffix == ".safetensors":
                n = int.from_bytes(fh.read(8), "little")
                head = fh.read(min(n, 50_000_000))
            samples = []
            for k in range(64):
                fh.seek(max(0, (size - chunk) * k // 63))
                samples.append(fh.read(chunk))
        parts.append(f"{f.name}:{size}".encode() + head + b"".join(samples))
    return _short_hash(parts)


_VERSION_FILES = ("config.json", "model.safetensors.index.json")


def model_version_id(path: str, adapter: str | None = None, *, name: str | None = None) -> str:
    """Stable id recorded with every prediction: the registry name if given, else
    `<dir name or hub id>@<hash of config + weights index>` (+ `+adapter@<hash>`)."""
    if name:
        return name
    local = Path(path)
    if local.is_dir():
        base = f"{local.name}@{_dir_fingerprint(local, _VERSION_FILES)}"
    else:
        base = f"{path}@hub"
        try:  # a hub id already in the local cache: hash its files like a directory
            from huggingface_hub import snapshot_download

            snap = Path(snapshot_download(path, local_files_only=True))
            base = (
                f"{path}@{_dir_fingerprint(snap, ('config.json', 'model.safetensors.index.json'))}"
            )
        except Exception:  # not cached: the hub id is the best stable name we have
            pass
    if adapter:
        base += f"+adapter@{_dir_fingerprint(Path(adapter), ('adapter_config.json',))}"
    return base


# --- the process cache --------------------------------------------------------------------

# _load_lock serialises loading (no model is loaded twice); _live_lock only guards the
# pointer swap, so scorers asking for the live backend never wait for a load.
_load_lock = threading.Lock()
_live_lock = threading.Lock()
_cache: dict[tuple[Any, ...], TransformersBackend] = {}
_live: Backend | None = None


def load_backend(
    settings: ModelSettings,
    *,
    policy: Policy | None = None,
    version_name: str | None = None,
) -> Backend:
    """The backend for `settings.model`, loaded once per process (cached on path, quant,
    dtype, device, adapter). `version_name` (a registry name) becomes its model_version.
    `policy` is accepted for backends that prepare per-policy state; the scorer needs none."""
    del policy
    if settings.name == "openai":
        from model.openai_backend import OpenAIBackend

        # Cached like a local model, so the live check sees the same backend; a registry
        # version served this way records its registry name too.
        okey = ("openai", settings.openai_base_url, settings.openai_model, version_name)
        with _load_lock:
            if okey not in _cache:
                extra = {"model_version": version_name} if version_name else {}
                _cache[okey] = OpenAIBackend.from_settings(settings, **extra)  # type: ignore[assignment]
            return _cache[okey]
    plan = plan_load(settings)
    key = (*plan.cache_key, version_name)
    with _load_lock:
        backend = _cache.get(key)
        if backend is None:
            from model.transformers_backend import TransformersBackend

            backend = TransformersBackend.from_plan(
                plan,
                version_name=version_name,
                batch_size=settings.batch_size,
                max_new_tokens=settings.max_new_tokens,
            )
            _cache[key] = backend
        return backend


def apply_calibration(backend: Backend, calibration: dict[str, Any] | None) -> None:
    """Apply a stored calibration (model_versions.calibration) to a backend that supports it."""
    setter = getattr(backend, "set_calibration", None)
    if setter is None:
        return
    if calibration and calibration.get("categories"):
        from model.calibration import Calibration

        setter(Calibration.from_dict(calibration))
    else:
        setter(None)


def _settings_for(target: Any, base: ModelSettings | None) -> tuple[ModelSettings, str | None]:
    """ModelSettings, or a registry entry (`uri`, `adapter_uri`, `name`), as settings."""
    if isinstance(target, ModelSettings):
        return target, None
    uri = getattr(target, "uri", None)
    if not uri:
        raise WardenError(f"cannot load {target!r}: no model uri")
    settings = (base or ModelSettings()).model_copy(
        update={"name": str(uri), "adapter": getattr(target, "adapter_uri", None)}
    )
    return settings, getattr(target, "name", None)


def load_target(target: Any, *, base: ModelSettings | None = None) -> Backend:
    """The backend for a registry entry (`model.live.RegistryTarget` or a registry
    `ModelVersionInfo`): its URI and adapter on `base`'s device/dtype/quant, its registry name
    as the model version every prediction records, its stored calibration applied. Every
    process loads a registry version through here, so they all score it the same way."""
    settings, name = _settings_for(target, base)
    backend = load_backend(settings, version_name=name)
    if name is not None:
        apply_calibration(backend, getattr(target, "calibration", None))
    return backend


# --- the live backend -----------------------------------------------------------------------

# How often (seconds) a serving process asks the registry which model is live: one indexed
# single-column query, so a promotion made by any process is served within this (plus the
# batch in flight and the new model's load time).
LIVE_CHECK_S = 2.0

# _check_lock lets one thread at a time ask the registry and load; the others keep serving
# the current live backend meanwhile (or wait, when there is none yet).
_check_lock = threading.Lock()
_live_name: str | None = None  # registry name of `_live`; None: not from the registry
_checked_at = float("-inf")  # time.monotonic() of the last registry check


def swap_live(target: Any, *, base: ModelSettings | None = None) -> Backend:
    """Load `target` (ModelSettings or a registry entry) and make it the live backend.
    Loading happens before the swap, outside no lock that callers wait on: in-flight
    `score` calls keep their reference to the old backend and finish on it."""
    settings, name = _settings_for(target, base)
    new = load_target(target, base=base) if name is not None else load_backend(settings)
    global _live, _live_name
    with _live_lock:
        old, _live, _live_name = _live, new, name
    log.info(
        "live model swapped: %s -> %s",
        getattr(old, "model_version", None),
        new.model_version,
    )
    return new


def mark_live_stale() -> None:
    """Make the next `live_backend(database_url=...)` call ask the registry (after this
    process promoted or rolled back, it need not wait for the next periodic check)."""
    global _checked_at
    with _live_lock:
        _checked_at = float("-inf")


def live_backend(
    settings: ModelSettings | None = None,
    *,
    database_url: str | None = None,
    check_s: float = LIVE_CHECK_S,
    require_registry: bool = False,
) -> Backend:
    """The backend this process serves now.

    With `database_url`, the registry decides: at most every `check_s` seconds one small query
    asks which version is live, and a different one is loaded and swapped in (calls already
    running finish on the old one). While the registry has no live model, the model named by
    `settings` is served, and a log line says so (`require_registry` refuses instead). A
    database error is retried, then raised (`model.live.LiveModelUnavailable`): never another
    model than the registry says. Without `database_url`: the current live backend, or the
    model named by `settings` on first use.
    """
    global _live, _checked_at
    if database_url is None:
        with _live_lock:
            current = _live
        if current is not None:
            return current
        loaded = load_backend(settings or ModelSettings())
        with _live_lock:
            if _live is None:
                _live = loaded
            return _live
    with _live_lock:
        current, due = _live, time.monotonic() - _checked_at >= check_s
    if current is not None and not due:
        return current
    # One thread asks; the others serve the current model meanwhile (none yet: they wait).
    if not _check_lock.acquire(blocking=current is None):
        return current  # type: ignore[return-value]
    try:
        with _live_lock:
            current, name = _live, _live_name
            if current is not None and time.monotonic() - _checked_at < check_s:
                return current  # another thread checked while this one waited
        return _follow_registry(settings, database_url, current, name, require_registry)
    finally:
        _check_lock.release()


def _follow_registry(
    settings: ModelSettings | None,
    database_url: str,
    current: Backend | None,
    name: str | None,
    require_registry: bool,
) -> Backend:
    """Ask the registry which version is live and make `_live` that one (see live_backend)."""
    from model.live import read_live_name, read_target

    global _checked_at
    live = read_live_name(database_url)
    if live is None:
        if require_registry:
            raise WardenError(
                "no model is live in the registry: promote one (warden models promote NAME)"
            )
        fallback = load_backend(settings or ModelSettings())
        if fallback is not current:
            log.warning(
                "no live model in the registry; serving the configured model %s",
                fallback.model_version,
            )
            swap_live(settings or ModelSettings())
    elif live != name or current is None:
        target = read_target(database_url)  # the whole entry; None only if unpromoted since
        if target is not None:
            swap_live(target, base=settings)
    with _live_lock:
        _checked_at = time.monotonic()
        return _live  # type: ignore[return-value]


def evict(backend: Backend | None = None) -> int:
    """Drop cached backends (all, or one); returns how many. Their memory goes once unused."""
    global _live, _live_name, _checked_at
    with _load_lock:
        keys = [k for k, v in _cache.items() if backend is None or v is backend]
        for k in keys:
            del _cache[k]
    with _live_lock:
        if backend is None or _live is backend:
            _live, _live_name, _checked_at = None, None, float("-inf")
    return len(keys)
