"""OCR accuracy and time on Korean, Chinese and English, per engine, and what it does to recall.

Engines: RapidOCR alone (`rapidocr`), Tesseract's Korean model alone (`tesseract`), and the
merged default (`auto`: RapidOCR, plus Tesseract where RapidOCR's lines look non-Latin or
unsure, merged by script; model.ocr_scripts). Two sets of images per language:
- `foreign`: drawn here with plain PIL, not by SynthMod: text from Faker's ko_KR / zh_CN /
  en_US providers (addresses, company slogans, sentences), faces SynthMod does not use (Noto
  Sans Mono CJK from the noto-cjk-sans-otc wheel, Liberation Sans Narrow, DejaVu Sans Light),
  other sizes, colours and canvas. These are the figures that count.
- `synthmod`: SynthMod's own items (`training.synth.iter_samples`, default variant mix).
Character accuracy is 1 - CER (Levenshtein distance over the reference length, floored at 0),
whitespace removed from both sides: line breaks and word spacing depend on the layout, not on
what was read. Time is per image, measured per engine; `auto`'s time is RapidOCR's plus
Tesseract's where `auto` calls it (what the merged engine runs; the merge itself is ~µs).

Then the demo model scores SynthMod's Korean items with each engine's OCR text as its hint:
recall per category, their average, and the benign flag rate (share of safe items flagged).

With --rapidocr-cuda (a CUDA machine with onnxruntime-gpu): RapidOCR's ms per image on the
foreign sets with onnxruntime's CUDA provider against its CPU provider, the same images, in one
run (`rapidocr_cuda_vs_cpu`).

Run: .venv/bin/python bench/ocr.py [--n 20] [--n-recall 120] [--seed 0] [--rapidocr-cuda]
     [--results PATH]
Writes bench/results/ocr.json (or --results: a .json file or a folder) with its provenance.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import provenance  # noqa: E402

RESULTS_NAME = "ocr.json"
LANGS = ("ko", "zh", "en")
ENGINES = ("rapidocr", "tesseract", "auto")
_FAKER_LOCALE = {"ko": "ko_KR", "zh": "zh_CN", "en": "en_US"}
_LATIN_FACES = (
    "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-ExtraLight.ttf",
)
_STYLES = (  # (background, ink): none of SynthMod's palettes
    ((245, 245, 245), (40, 40, 40)),
    ((255, 250, 235), (0, 40, 120)),
    ((40, 44, 52), (230, 230, 230)),
    ((210, 235, 250), (90, 0, 60)),
)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_accuracy(reference: str, read: str) -> float:
    """1 - CER with whitespace removed from both, floored at 0; 1.0 for two empty texts."""
    ref, hyp = "".join(reference.split()), "".join(read.split())
    if not ref:
        return 1.0 if not hyp else 0.0
    return max(0.0, 1.0 - edit_distance(ref, hyp) / len(ref))


def _cjk_face(family: str) -> tuple[str, int]:
    """(path, index) of `family` inside the noto-cjk-sans-otc wheel's collection."""
    import importlib.resources

    from PIL import ImageFont

    path = str(importlib.resources.files("noto_cjk_sans_otc") / "NotoSansCJK-Regular.ttc")
    for index in range(40):
        try:
            font = ImageFont.truetype(path, 20, index=index)
        except OSError:
            break
        if font.getname()[0] == family:
            return path, index
    raise RuntimeError(f"{family} not in {path}")


def foreign_texts(lang: str, n: int, seed: int) -> list[str]:
    """`n` texts from Faker's providers for `lang` (one or two lines each)."""
    from faker import Faker

    fake = Faker(_FAKER_LOCALE[lang])
    fake.seed_instance(seed)
    makers: list[Callable[[], str]] = [fake.address, fake.company, lambda: fake.sentence(6)]
    if lang == "ko":  # ko_KR's sentence() is Latin lorem ipsum; its slogans are Korean
        makers[2] = fake.catch_phrase
    out = []
    for i in range(n):
        text = makers[i % len(makers)]()
        if lang != "en" and i % 2:
            text += " " + fake.name()
        out.append(text.replace("\n", " "))
    return out


def render_foreign(text: str, lang: str, i: int) -> tuple[Any, str]:
    """A 600x260 card drawn with plain PIL, one of four palettes; and the text as drawn (wrapped
    to fit, at most four lines)."""
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    size = random.Random(f"{lang}:{i}").choice((26, 30, 36))
    if lang == "en":
        font = ImageFont.truetype(_LATIN_FACES[i % len(_LATIN_FACES)], size)
        width = 36 if size < 30 else 28
    else:
        path, index = _cjk_face(
            "Noto Sans Mono CJK KR" if lang == "ko" else "Noto Sans Mono CJK SC"
        )
        font = ImageFont.truetype(path, size, index=index)
        width = 18 if size < 30 else 14
    bg, ink = _STYLES[i % len(_STYLES)]
    img = Image.new("RGB", (600, 260), bg)
    draw = ImageDraw.Draw(img)
    lines = textwrap.wrap(text, width)[:4]
    for k, line in enumerate(lines):
        draw.text((24, 24 + k * int(size * 1.5)), line, font=font, fill=ink)
    return img, "\n".join(lines)


def foreign_set(lang: str, n: int, seed: int) -> list[tuple[Any, str]]:
    """`n` (image, drawn text) pairs in `lang`, none of them made by SynthMod."""
    return [render_foreign(text, lang, i) for i, text in enumerate(foreign_texts(lang, n, seed))]


def synthmod_set(lang: str, n: int, seed: int) -> list[tuple[Any, dict[str, Any]]]:
    """SynthMod items in `lang` that show text (bare photos have nothing to read)."""
    from training.synth import iter_samples

    out = []
    start = 0
    while len(out) < n:
        for image, record in iter_samples(n, seed, langs=[lang], start=start):
            if record["rendered_text"].strip():
                out.append((image, record))
        start += n
    return out[:n]


class Reader:
    """Runs each engine once per image and keeps lines and times, so `auto` is derived from
    the same RapidOCR and Tesseract reads it would make."""

    def __init__(self) -> None:
        from model import ocr_tesseract, signals

        self.signals, self.tesseract = signals, ocr_tesseract

    def read(self, image: Any) -> dict[str, tuple[str, float]]:
        from model import ocr_scripts

        t0 = time.perf_counter()
        rapid = self.signals.rapid_lines(image)
        t_rapid = time.perf_counter() - t0
        t0 = time.perf_counter()
        tess = self.tesseract.read_lines(image)
        t_tess = time.perf_counter() - t0
        second = ocr_scripts.needs_second_engine(rapid)
        auto = ocr_scripts.merge_lines(rapid, tess if second else ())
        return {
            "rapidocr": (ocr_scripts.join_lines(ocr_scripts.merge_lines(rapid, ())), t_rapid),
            "tesseract": (ocr_scripts.join_lines(tess), t_tess),
            "auto": (ocr_scripts.join_lines(auto), t_rapid + (t_tess if second else 0.0)),
            "auto_called_tesseract": (str(second), 0.0),
        }


def summarise(rows: Sequence[tuple[str, dict[str, tuple[str, float]]]]) -> dict[str, Any]:
    """Per engine: mean character accuracy, median and mean ms per image; and how often
    `auto` called Tesseract."""
    out: dict[str, Any] = {"images": len(rows)}
    for engine in ENGINES:
        acc = [char_accuracy(ref, reads[engine][0]) for ref, reads in rows]
        ms = [reads[engine][1] * 1000 for _, reads in rows]
        out[engine] = {
            "char_accuracy": round(statistics.fmean(acc), 4),
            "exact_share": round(sum(a == 1.0 for a in acc) / len(acc), 4),
            "ms_median": round(statistics.median(ms), 1),
            "ms_mean": round(statistics.fmean(ms), 1),
        }
    called = [reads["auto_called_tesseract"][0] == "True" for _, reads in rows]
    out["auto"]["tesseract_call_share"] = round(sum(called) / len(called), 4)
    return out


def recall_on_korean(
    items: Sequence[tuple[Any, dict[str, Any]]], reads: Sequence[dict[str, tuple[str, float]]]
) -> dict[str, Any]:
    """The demo model on SynthMod's Korean items, with each engine's text as the OCR hint."""
    from bench.demo_foreign import recall_table
    from model.backends import ScoringInput
    from model.loading import DEMO_MODEL_DIR, load_backend
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY, ModelSettings

    policy = load_policy(DEFAULT_POLICY)
    backend = load_backend(ModelSettings(name=str(DEMO_MODEL_DIR), device="cpu", quant="none"))
    hints = {engine: [r[engine][0] for r in reads] for engine in ("rapidocr", "auto")}
    hints["exact_text"] = [record["rendered_text"] for _, record in items]
    out: dict[str, Any] = {"items": len(items)}
    for name, texts in hints.items():
        verdicts = backend.score(
            [ScoringInput(image=img, ocr_text=t) for (img, _), t in zip(items, texts, strict=True)],
            policy,
        )
        rows = []
        for (_, record), verdict in zip(items, verdicts, strict=True):
            labels = record["labels"] or ["safe"]
            rows.extend((label, verdict.flagged) for label in labels)
        table = recall_table(rows)
        safe_rows = [flagged for label, flagged in rows if label == "safe"]
        out[name] = {
            "recall": {k: round(v, 4) for k, v in table.items()},
            "benign_flag_rate": (
                round(sum(bool(f) for f in safe_rows) / len(safe_rows), 4) if safe_rows else None
            ),
        }
    return out


def rapidocr_cuda_vs_cpu(images: Sequence[Any]) -> dict[str, Any]:
    """RapidOCR on the same images with onnxruntime's CPU provider, then its CUDA one (a fresh
    engine each; one warm-up read before timing): ms per image and their ratio."""
    from model import signals

    out: dict[str, Any] = {"images": len(images)}
    for name, cuda in (("cpu", False), ("cuda", True)):
        signals.OCR_PARAMS["EngineConfig.onnxruntime.use_cuda"] = cuda
        signals._ocr_engine = None  # the next read builds an engine with these params
        signals.rapid_lines(images[0])
        ms = []
        for img in images:
            t0 = time.perf_counter()
            signals.rapid_lines(img)
            ms.append((time.perf_counter() - t0) * 1000)
        out[name] = {
            "ms_median": round(statistics.median(ms), 2),
            "ms_mean": round(statistics.fmean(ms), 2),
        }
    signals.OCR_PARAMS.pop("EngineConfig.onnxruntime.use_cuda", None)
    signals._ocr_engine = None
    out["cpu_over_cuda_median"] = round(out["cpu"]["ms_median"] / out["cuda"]["ms_median"], 2)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20, help="Images per language and set.")
    p.add_argument("--n-recall", type=int, default=120, help="SynthMod Korean items to score.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--results",
        default=None,
        help=f"Results .json file or folder (default: bench/results/{RESULTS_NAME}).",
    )
    p.add_argument(
        "--rapidocr-cuda",
        action="store_true",
        help="Also time RapidOCR with onnxruntime's CUDA provider against its CPU one.",
    )
    a = p.parse_args(argv)
    if a.n < 1 or a.n_recall < 0:
        p.error("--n must be 1 or more and --n-recall 0 or more")
    if a.rapidocr_cuda:
        from model.pipeline import ocr_on_gpu

        if not ocr_on_gpu("auto"):
            p.error(
                "--rapidocr-cuda needs onnxruntime's CUDAExecutionProvider (onnxruntime-gpu) "
                "and a GPU that torch sees"
            )
    out_path = provenance.results_or_exit(p, a.results, RESULTS_NAME)
    from model import ocr_tesseract

    if (why := ocr_tesseract.available()) is not None:
        p.error(why)
    prov = provenance.start(__file__, argv)

    reader = Reader()
    reader.read(foreign_set("en", 1, a.seed + 99)[0][0])  # load both engines before timing
    accuracy: dict[str, Any] = {}
    for lang in LANGS:
        foreign = foreign_set(lang, a.n, a.seed)
        accuracy.setdefault("foreign", {})[lang] = summarise(
            [(ref, reader.read(img)) for img, ref in foreign]
        )
        synth = synthmod_set(lang, a.n, a.seed)
        accuracy.setdefault("synthmod", {})[lang] = summarise(
            [(rec["rendered_text"], reader.read(img)) for img, rec in synth]
        )
        for name in ("foreign", "synthmod"):
            row = accuracy[name][lang]
            print(
                f"{name:8} {lang}: "
                + "  ".join(
                    f"{e} {row[e]['char_accuracy']:.3f} {row[e]['ms_median']:.0f}ms"
                    for e in ENGINES
                )
                + f"  (auto called Tesseract on {row['auto']['tesseract_call_share']:.0%})"
            )
    out: dict[str, Any] = {"hardware": prov.summary, "n": a.n, "seed": a.seed, **accuracy}
    if a.n_recall:
        items = synthmod_set("ko", a.n_recall, a.seed + 1)
        reads = [reader.read(img) for img, _ in items]
        out["demo_recall_synthmod_ko"] = recall_on_korean(items, reads)
        for name, row in out["demo_recall_synthmod_ko"].items():
            if isinstance(row, dict):
                print(
                    f"demo model, SynthMod ko, hint={name}: average recall "
                    f"{row['recall']['average']:.3f}, benign flag rate {row['benign_flag_rate']}"
                )
    if a.rapidocr_cuda:
        images = [img for lang in LANGS for img, _ in foreign_set(lang, a.n, a.seed)]
        out["rapidocr_cuda_vs_cpu"] = gpu = rapidocr_cuda_vs_cpu(images)
        print(
            f"RapidOCR, {gpu['images']} images: CPU {gpu['cpu']['ms_median']} ms, CUDA "
            f"{gpu['cuda']['ms_median']} ms per image (median; {gpu['cpu_over_cuda_median']}x)"
        )
    provenance.write_results(out_path, out, prov)
    print(f"-> {out_path}")


if __name__ == "__main__":
    main()
