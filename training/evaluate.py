"""Evaluation: per-category precision/recall/F1, average recall, adversarial recall, ECE, retention.

The metric functions are pure (lists of label sets and scores in, numbers out) and unit-tested on
hand-computed cases. `evaluate_backend` scores a manifest through any `model.backends.Backend`
(the same code that serves), and `write_report` renders a self-contained plotly HTML report.

"safe" is scored as a category of its own (true: no labels; predicted: nothing flagged), so a
model that flags every harmless image loses average recall. Categories with no positive example
in the set have an undefined recall and are left out of the average.

The OCR hint of each row comes from `--ocr`: `auto` (the default) takes the manifest's
`rendered_text` where the row has one and runs RapidOCR (`model.signals`, as the worker does)
where it has none; the report counts which source each row used. `read_dataset` reads a split
of a built dataset (`warden dataset build`), whose non-ledger golden rows are the retention set;
a post's or video's row is scored as the worker scores the item, one prompt with every medium
(each medium's hint chosen as above).

Run: warden eval --model NAME|DIR --manifest eval/manifest.jsonl [--against live] [--json]
     warden eval --model NAME --dataset datasets/d1 [--split golden] --against live
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from model.calibration import expected_calibration_error as _ece
from storage.errors import WardenError
from storage.policy import SAFE, Policy

if TYPE_CHECKING:
    from model.backends import Backend

log = logging.getLogger(__name__)

CLEAN = "clean"


# --- pure metrics ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryMetrics:
    category: str
    tp: int
    fp: int
    fn: int
    support: int  # items that truly carry the category
    precision: float | None  # None: nothing predicted
    recall: float | None  # None: no positive example
    f1: float | None


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def category_metrics(
    y_true: Sequence[Collection[str]],
    y_pred: Sequence[Collection[str]],
    categories: Sequence[str],
    *,
    include_safe: bool = True,
) -> dict[str, CategoryMetrics]:
    """Per-category counts and scores; `safe` is true/predicted when the label set is empty."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} truths against {len(y_pred)} predictions")
    cats = list(categories) + ([SAFE] if include_safe else [])
    out: dict[str, CategoryMetrics] = {}
    for cat in cats:
        tp = fp = fn = 0
        for t, p in zip(y_true, y_pred, strict=True):
            in_t = (not t) if cat == SAFE else cat in t
            in_p = (not p) if cat == SAFE else cat in p
            tp += in_t and in_p
            fp += in_p and not in_t
            fn += in_t and not in_p
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = None
        if precision is not None and recall is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[cat] = CategoryMetrics(cat, tp, fp, fn, tp + fn, precision, recall, f1)
    return out


def average_recall(metrics: Mapping[str, CategoryMetrics]) -> float | None:
    """Unweighted mean recall over categories that have positive examples (the headline)."""
    recalls = [m.recall for m in metrics.values() if m.recall is not None]
    return sum(recalls) / len(recalls) if recalls else None


def weighted_recall(metrics: Mapping[str, CategoryMetrics]) -> float | None:
    """Recall weighted by support: all true labels found over all true labels."""
    support = sum(m.support for m in metrics.values())
    return sum(m.tp for m in metrics.values()) / support if support else None


def unparsable_rate(parse_ok: Sequence[bool | None]) -> float | None:
    """Share of replies that did not parse, among items where a reply was asked for."""
    asked = [p for p in parse_ok if p is not None]
    return sum(1 for p in asked if not p) / len(asked) if asked else None


def expected_calibration_error(
    probs: Sequence[float], labels: Sequence[bool], *, n_bins: int = 10
) -> float | None:
    """Binary ECE over (item, category) pairs (model.calibration's definition); None if empty."""
    if len(probs) != len(labels):
        raise ValueError("probs and labels differ in length")
    if not probs:
        return None
    return _ece(probs, labels, n_bins=n_bins)


def metric_delta(
    after: Mapping[str, CategoryMetrics], before: Mapping[str, CategoryMetrics]
) -> dict[str, float]:
    """Per-category recall change (after - before) where both are defined."""
    return {
        c: after[c].recall - before[c].recall  # type: ignore[operator]
        for c in after
        if c in before and after[c].recall is not None and before[c].recall is not None
    }


# --- evaluation rows ------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalMedium:
    """One image of a post or frame of a video in an evaluation row (a built dataset's), with
    the label the scorer's prompt gives it and its OCR text (None: none stored)."""

    image: bytes = field(repr=False)
    label: str
    ocr_text: str | None = None
    path: Path | None = None  # the manifest's file (None: bytes from a dataset's parquet)


@dataclass(frozen=True)
class EvalRow:
    """One labelled image: the manifest's `path` (resolved), labels ([] = safe), and metadata.

    `ocr_text` None means the source gave no text for the image (not even ""); `image` holds
    the bytes when they come from a dataset's parquet file rather than a file at `path`.
    `media`: a post's or video's every medium in order (a dataset row of several), scored as
    one multi-image prompt like the worker scores the item; () for one image.
    """

    path: Path
    labels: tuple[str, ...]
    ocr_text: str | None = None
    text: str | None = None
    variant: str = CLEAN
    family: str | None = None
    retention: bool = False
    key: str | None = None  # the image's identity in the set (default: its path)
    image: bytes | None = field(default=None, repr=False)
    media: tuple[EvalMedium, ...] = ()

    @property
    def id(self) -> str:
        return self.key or str(self.path)


def read_manifest(path: Path, policy: Policy | None = None) -> list[EvalRow]:
    """Read a JSONL manifest (SynthMod's format: path, labels, rendered_text, variant, family).

    Rows with `"retention": true` (or `"subset": "retention"`) form the retention set. Labels
    are validated against `policy` when given; restricted categories are kept (evaluation may
    measure them; they never enter training). A post's row has `images` (paths in order)
    instead of `path`, and may carry `media_labels` and `rendered_texts` (each image's prompt
    label and OCR text, as `training.dataset.export_manifest` writes them): it is scored as
    one multi-image prompt, like a dataset's row of several media.
    """
    path = Path(path)
    if not path.is_file():
        raise WardenError(f"manifest {path} does not exist")
    rows: list[EvalRow] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            images = [Path(p) for p in raw["images"]] if raw.get("images") else []
            img = images[0] if images else Path(raw["path"])
            labels = list(raw.get("labels") or [])
            names = list(raw.get("media_labels") or [f"Image {n + 1}" for n in range(len(images))])
            texts = list(raw.get("rendered_texts") or [None] * len(images))
            if len(images) > 1 and not len(names) == len(texts) == len(images):
                raise ValueError("media_labels and rendered_texts must match images")
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise WardenError(f"{path}:{lineno}: not a manifest row ({exc})") from exc
        if policy is not None:
            try:
                labels = policy.validate_labels(labels)
            except ValueError as exc:
                raise WardenError(f"{path}:{lineno}: {exc}") from exc
        media: list[EvalMedium] = []
        if len(images) > 1:
            for file, name, text in zip(images, names, texts, strict=True):
                file = file if file.is_absolute() else path.parent / file
                try:
                    media.append(EvalMedium(file.read_bytes(), str(name), text or None, file))
                except OSError as exc:
                    raise WardenError(f"{path}:{lineno}: cannot read {file}: {exc}") from exc
        rows.append(
            EvalRow(
                path=img if img.is_absolute() else path.parent / img,
                media=tuple(media),
                # A post is named by its images in order (two posts may share a cover).
                key="|".join(str(i) for i in images) if media else None,
                labels=tuple(labels),
                ocr_text=raw.get("rendered_text", raw.get("ocr_text")),
                text=raw.get("text"),
                variant=raw.get("variant") or CLEAN,
                family=raw.get("family"),
                retention=bool(raw.get("retention")) or raw.get("subset") == "retention",
            )
        )
    if not rows:
        raise WardenError(f"manifest {path} has no rows")
    return rows


def manifest_key(path: Path) -> str:
    """Identity of an evaluation set: sha256 of the manifest bytes (first 16 hex)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


DATASET_SPLITS = ("golden", "validation")


def read_dataset(
    path: Path, split: str = "golden", policy: Policy | None = None
) -> tuple[list[EvalRow], str]:
    """The rows of one split of a built dataset and the split's evaluation key.

    Rows held out of the replay / general data (origin "replay:...") are the retention set;
    the harmless generated rows held out in golden (origin "benign-heldout...") are not. An
    empty OCR text counts as none, so `--ocr auto` reads those images. The key names the
    dataset's data hash: every model evaluated on it is judged on the same rows.
    """
    from training.dataset import load_items, read_card, row_images

    if split not in DATASET_SPLITS:
        raise WardenError(f"--split {split!r}: use {' or '.join(DATASET_SPLITS)}")
    card = read_card(Path(path))
    file = Path(path) / "data" / f"items-{split}.parquet"
    rows: list[EvalRow] = []
    for r in load_items(Path(path), split):
        labels = list(r["labels"] or [])
        if policy is not None:
            try:
                labels = policy.validate_labels(labels)
            except ValueError as exc:
                raise WardenError(f"{file}: row {r['key'][:12]}: {exc}") from exc
        rows.append(
            EvalRow(
                path=file,
                labels=tuple(labels),
                ocr_text=r["ocr_text"] or None,
                text=r["text"],
                variant=r["variant"] or CLEAN,
                family=r["family"],
                # Retention rows are the replay's held-out share (origin "replay:..."), not the
                # harmless generated rows held out in golden (origin "benign-heldout...").
                retention=(r["origin"] or "ledger").startswith("replay"),
                key=r["key"],
                image=r["image"]["bytes"],
                media=tuple(
                    EvalMedium(data, m["label"], m["ocr_text"] or None)
                    for data, m in zip(row_images(r), r["media"], strict=True)
                )
                if len(r.get("media") or []) > 1
                else (),
            )
        )
    if not rows:
        raise WardenError(f"dataset {path} has no {split} rows")
    return rows, f"dataset:{card['data_hash'][:16]}:{split}"


# --- reports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalReport:
    model: str
    n: int
    per_category: dict[str, CategoryMetrics]
    average_recall: float | None
    adversarial_recall: float | None  # weighted recall over rows with variant != clean
    per_variant: dict[str, float | None]  # average recall per variant
    unparsable_rate: float | None
    ece: float | None
    retention: float | None  # average recall on the retention rows
    seconds: float
    eval_key: str | None = None
    # Recall per category on the retention rows alone: forgetting shows per category first.
    retention_per_category: dict[str, float | None] = field(default_factory=dict)
    predictions: list[dict[str, Any]] = field(default_factory=list)
    # Share of harmless rows (no label) that the model flagged, over all rows and on the
    # retention rows: the cost of a candidate that "finds" more by flagging everything.
    benign_flag_rate: float | None = None
    retention_benign_flag_rate: float | None = None
    n_retention: int = 0
    # Where each row's OCR hint came from: manifest | rapidocr | rapidocr-failed | none.
    ocr_sources: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers, as stored in the registry and compared by the gate."""
        return {
            "model": self.model,
            "n": self.n,
            "average_recall": self.average_recall,
            "adversarial_recall": self.adversarial_recall,
            "per_variant": self.per_variant,
            "unparsable_rate": self.unparsable_rate,
            "ece": self.ece,
            "retention": self.retention,
            "retention_per_category": self.retention_per_category,
            "n_retention": self.n_retention,
            "benign_flag_rate": self.benign_flag_rate,
            "retention_benign_flag_rate": self.retention_benign_flag_rate,
            "ocr_sources": self.ocr_sources,
            "seconds": round(self.seconds, 2),
            "eval_key": self.eval_key,
            "per_category": {c: asdict(m) for c, m in self.per_category.items()},
            # Per-row outcomes: the gate pairs candidate and live row by row (its margin).
            "rows": [
                {
                    "id": p["id"],
                    "labels": p["labels"],
                    "predicted": p["predicted"],
                    "retention": p["retention"],
                }
                for p in self.predictions
            ],
        }


def benign_flag_rate(
    y_true: Sequence[Collection[str]], y_pred: Sequence[Collection[str]]
) -> float | None:
    """Share of harmless rows (no true label) with anything flagged; None without such rows."""
    flagged = [bool(p) for t, p in zip(y_true, y_pred, strict=True) if not t]
    return sum(flagged) / len(flagged) if flagged else None


def compute_report(
    model: str,
    rows: Sequence[EvalRow],
    scores: Sequence[Mapping[str, float]],
    policy: Policy,
    *,
    parse_ok: Sequence[bool | None] | None = None,
    seconds: float = 0.0,
    eval_key: str | None = None,
    ocr_sources: Sequence[str] | None = None,
) -> EvalReport:
    """All metrics from per-row scores; a category is predicted when its score >= threshold.

    `ocr_sources` names, per row, where its OCR hint came from (see `evaluate_backend`).
    """
    cats = [c.id for c in policy.categories]
    preds = [set(policy.flagged(s)) for s in scores]
    truths = [set(r.labels) for r in rows]
    per_cat = category_metrics(truths, preds, cats)

    def subset(mask: Callable[[EvalRow], bool]) -> dict[str, CategoryMetrics] | None:
        idx = [i for i, r in enumerate(rows) if mask(r)]
        if not idx:
            return None
        return category_metrics([truths[i] for i in idx], [preds[i] for i in idx], cats)

    def subset_avg(mask: Callable[[EvalRow], bool]) -> float | None:
        m = subset(mask)
        return average_recall(m) if m is not None else None

    retained = subset(lambda r: r.retention) or {}

    adv_idx = [i for i, r in enumerate(rows) if r.variant != CLEAN]
    adversarial = None
    if adv_idx:
        m = category_metrics([truths[i] for i in adv_idx], [preds[i] for i in adv_idx], cats)
        adversarial = weighted_recall(m)
    variants = sorted({r.variant for r in rows})
    probs = [float(s.get(c, 0.0)) for s in scores for c in cats]
    labels = [c in t for t in truths for c in cats]
    sources = list(ocr_sources) if ocr_sources is not None else [None] * len(rows)
    if len(sources) != len(rows):
        raise ValueError(f"{len(sources)} OCR sources for {len(rows)} rows")
    predictions = [
        {
            "id": r.id,
            "path": str(r.path),
            "text": r.text,
            "ocr_text": r.ocr_text,
            "labels": list(r.labels),
            "predicted": sorted(p),
            "variant": r.variant,
            "family": r.family,
            "retention": r.retention,
            "ocr_source": src,
            "scores": {c: round(float(s.get(c, 0.0)), 4) for c in cats},
        }
        for r, p, s, src in zip(rows, preds, scores, sources, strict=True)
    ]
    ret_idx = [i for i, r in enumerate(rows) if r.retention]
    return EvalReport(
        model=model,
        n=len(rows),
        per_category=per_cat,
        average_recall=average_recall(per_cat),
        adversarial_recall=adversarial,
        per_variant={v: subset_avg(lambda r, v=v: r.variant == v) for v in variants},
        unparsable_rate=unparsable_rate(list(parse_ok or [])),
        ece=expected_calibration_error(probs, labels),
        retention=average_recall(retained) if retained else None,
        seconds=seconds,
        eval_key=eval_key,
        predictions=predictions,
        retention_per_category={c: m.recall for c, m in retained.items()},
        benign_flag_rate=benign_flag_rate(truths, preds),
        retention_benign_flag_rate=benign_flag_rate(
            [truths[i] for i in ret_idx], [preds[i] for i in ret_idx]
        ),
        n_retention=len(ret_idx),
        ocr_sources=dict(Counter(s for s in sources if s is not None)),
    )


def recall_by_families(
    report: EvalReport, policy: Policy, families: Collection[str]
) -> dict[str, dict[str, Any]]:
    """Average recall on the report's rows whose phrase family is in `families`, and on the
    rest: after a fine-tune on corrections, what it learned by example vs what carried over."""
    cats = [c.id for c in policy.categories]
    out: dict[str, dict[str, Any]] = {}
    for name, inside in (("in_families", True), ("other_families", False)):
        rows = [p for p in report.predictions if (p["family"] in families) == inside]
        metrics = category_metrics(
            [set(p["labels"]) for p in rows], [set(p["predicted"]) for p in rows], cats
        )
        out[name] = {"n": len(rows), "average_recall": average_recall(metrics)}
    return out


def row_changes(
    live: Sequence[Mapping[str, Any]],
    candidate: Sequence[Mapping[str, Any]],
    *,
    keep: int = 40,
    text_chars: int = 160,
) -> dict[str, Any]:
    """What a candidate changed against live on the same rows, row by row.

    Rows are paired by id and carry `labels` and `predicted`, and may carry `text`/`ocr_text`,
    `family` and `scores` (an `EvalReport`'s predictions, or a summary's `rows`). A harmful row
    *loses* a category when live flagged a true category the candidate does not (and *gains*
    one the other way); a harmless row is *newly flagged* when live flagged nothing and the
    candidate flags something. The costs are listed row by row (up to `keep` each, with their
    text and the scores of the categories involved); the benefits are counted.
    """
    by_id = {str(r["id"]): r for r in candidate}
    missing = [str(r["id"]) for r in live if str(r["id"]) not in by_id]
    if missing or len(by_id) != len(live):
        raise ValueError(
            f"live and candidate rows differ ({len(live)} vs {len(by_id)}; e.g. {missing[:3]})"
        )
    lost_cats: Counter[str] = Counter()
    gained_cats: Counter[str] = Counter()
    lost_rows: list[dict[str, Any]] = []
    flagged_rows: list[dict[str, Any]] = []
    families: dict[str, dict[str, int]] = {}
    n_harmful = n_benign = rows_lost = rows_gained = newly = no_longer = 0

    def shown(lr: Mapping[str, Any], cr: Mapping[str, Any], extra: dict[str, Any]) -> dict:
        text = lr.get("ocr_text") or lr.get("text") or ""
        cats = set(lr["labels"]) | set(lr["predicted"]) | set(cr["predicted"])
        out = {
            "id": str(lr["id"]),
            "text": text[:text_chars] + ("…" if len(text) > text_chars else ""),
            "family": lr.get("family"),
            "labels": sorted(lr["labels"]),
            "live": sorted(lr["predicted"]),
            "candidate": sorted(cr["predicted"]),
        } | extra
        for who, r in (("live_scores", lr), ("candidate_scores", cr)):
            if r.get("scores"):
                out[who] = {c: r["scores"][c] for c in sorted(cats) if c in r["scores"]}
        return out

    for lr in live:
        cr = by_id[str(lr["id"])]
        truth, was, now = set(lr["labels"]), set(lr["predicted"]), set(cr["predicted"])
        if truth:
            n_harmful += 1
            lost, gained = (truth & was) - now, (truth & now) - was
            lost_cats.update(lost)
            gained_cats.update(gained)
            rows_lost += bool(lost)
            rows_gained += bool(gained)
            if lost and len(lost_rows) < keep:
                lost_rows.append(shown(lr, cr, {"lost": sorted(lost)}))
            continue
        n_benign += 1
        fam = families.setdefault(
            str(lr.get("family")), {"n": 0, "newly_flagged": 0, "no_longer_flagged": 0}
        )
        fam["n"] += 1
        if now and not was:
            newly += 1
            fam["newly_flagged"] += 1
            if len(flagged_rows) < keep:
                flagged_rows.append(shown(lr, cr, {}))
        elif was and not now:
            no_longer += 1
            fam["no_longer_flagged"] += 1
    return {
        "n_harmful": n_harmful,
        "n_benign": n_benign,
        "harmful_rows_losing_a_category": rows_lost,
        "harmful_rows_gaining_a_category": rows_gained,
        "categories_lost": dict(sorted(lost_cats.items())),
        "categories_gained": dict(sorted(gained_cats.items())),
        "benign_newly_flagged": newly,
        "benign_no_longer_flagged": no_longer,
        "benign_by_family": {
            k: v
            for k, v in sorted(families.items())
            if v["newly_flagged"] or v["no_longer_flagged"]
        },
        "lost_rows": lost_rows,
        "newly_flagged_rows": flagged_rows,
    }


OcrMode = Literal["auto", "manifest", "rapidocr", "none"]
OCR_MODES: tuple[str, ...] = ("auto", "manifest", "rapidocr", "none")


def _ocr_hint(row: EvalRow, image: Any, ocr: OcrMode) -> tuple[str, str]:
    """(hint, source) for one row: the manifest's text, RapidOCR's reading, or nothing."""
    if ocr == "manifest" or (ocr == "auto" and row.ocr_text is not None):
        return row.ocr_text or "", "manifest"
    if ocr == "none":
        return "", "none"
    from model.signals import compute_signals

    text = compute_signals(image, ocr=True, nsfw=False).ocr_text
    return (text, "rapidocr") if text is not None else ("", "rapidocr-failed")


def _scoring_input(row: EvalRow, ocr: OcrMode) -> tuple[Any, str]:
    """(ScoringInput, OCR source) for one row; a row of several media is one multi-image
    input, each medium's hint chosen as a single image's is (sources joined by "+")."""
    from PIL import Image

    from model.backends import MediumInput, ScoringInput
    from model.media import combined_ocr_text

    if not row.media:
        with Image.open(io.BytesIO(row.image) if row.image is not None else row.path) as im:
            image = im.convert("RGB")
        hint, source = _ocr_hint(row, image, ocr)
        return ScoringInput(image=image, text=row.text, ocr_text=hint), source
    media, sources = [], []
    for m in row.media:
        with Image.open(io.BytesIO(m.image)) as im:
            image = im.convert("RGB")
        hint, source = _ocr_hint(replace(row, ocr_text=m.ocr_text, media=()), image, ocr)
        media.append(MediumInput(image, hint, m.label))
        sources.append(source)
    text = combined_ocr_text([m.label for m in media], [m.ocr_text for m in media])
    inp = ScoringInput(image=media[0].image, text=row.text, ocr_text=text, media=tuple(media))
    return inp, "+".join(sorted(set(sources)))


def evaluate_backend(
    backend: Backend,
    policy: Policy,
    rows: Sequence[EvalRow],
    *,
    model_name: str | None = None,
    batch_size: int = 16,
    ocr: OcrMode = "auto",
    rationale: bool = False,
    eval_key: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Score `rows` through the serving backend and compute every metric.

    `ocr="auto"` passes each row's own text (a manifest's `rendered_text`) as the OCR hint
    where it has one and runs RapidOCR (`model.signals`, what the worker runs) where it has
    none: a model that leans on the hint must not be judged blind. `"manifest"` uses only the
    row's text (none: empty), `"rapidocr"` always reads the image, `"none"` gives no hint.
    The report counts each row's source (`ocr_sources`).
    """
    if ocr not in OCR_MODES:
        raise WardenError(f"OCR mode {ocr!r}: use {', '.join(OCR_MODES)}")
    t0 = time.perf_counter()
    scores: list[Mapping[str, float]] = []
    parse_ok: list[bool | None] = []
    sources: list[str] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        inputs = []
        for r in chunk:
            inp, source = _scoring_input(r, ocr)
            sources.append(source)
            inputs.append(inp)
        verdicts = backend.score(inputs, policy, rationale=rationale)
        scores.extend(v.scores for v in verdicts)
        parse_ok.extend(v.parse_ok if rationale else None for v in verdicts)
        if progress:
            progress(min(start + batch_size, len(rows)), len(rows))
    return compute_report(
        model_name or backend.model_version,
        rows,
        scores,
        policy,
        parse_ok=parse_ok,
        seconds=time.perf_counter() - t0,
        eval_key=eval_key,
        ocr_sources=sources,
    )


def format_table(report: EvalReport, against: EvalReport | None = None) -> str:
    """Plain-text table of per-category metrics (and deltas against another report)."""

    def f(x: float | None) -> str:
        return "   -  " if x is None else f"{x:6.3f}"

    head = f"{'category':16} {'prec':>6} {'recall':>6} {'f1':>6} {'support':>7}"
    if against:
        head += f" {'live rec':>8} {'delta':>7}"
    lines = [f"model {report.model}: {report.n} items, {report.seconds:.1f} s", head]
    for cat, m in report.per_category.items():
        line = f"{cat:16} {f(m.precision)} {f(m.recall)} {f(m.f1)} {m.support:7d}"
        if against and cat in against.per_category:
            o = against.per_category[cat].recall
            d = None if (o is None or m.recall is None) else m.recall - o
            line += f"   {f(o)} {'   -   ' if d is None else f'{d:+7.3f}'}"
        lines.append(line)
    pairs = [
        ("average recall", report.average_recall, against.average_recall if against else None),
        ("adversarial recall", report.adversarial_recall, against and against.adversarial_recall),
        ("retention", report.retention, against.retention if against else None),
        ("benign flag rate", report.benign_flag_rate, against and against.benign_flag_rate),
        (
            "retention benign",
            report.retention_benign_flag_rate,
            against and against.retention_benign_flag_rate,
        ),
        ("ECE", report.ece, against.ece if against else None),
        ("unparsable rate", report.unparsable_rate, against and against.unparsable_rate),
    ]
    for name, a, b in pairs:
        line = f"{name:20} {f(a)}"
        if against:
            line += f"   live {f(b)}"
        lines.append(line)
    lines.append(f"retention rows       {report.n_retention}")
    if report.ocr_sources:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.ocr_sources.items()))
        lines.append(f"OCR hint source      {counts}")
    return "\n".join(lines)


def _reliability(report: EvalReport, n_bins: int = 10) -> tuple[list[float], list[float]]:
    conf: list[float] = []
    acc: list[float] = []
    pairs = [(p["scores"][c], c in p["labels"]) for p in report.predictions for c in p["scores"]]
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        sel = [(s, y) for s, y in pairs if lo <= s < hi or (b == n_bins - 1 and s == 1.0)]
        if sel:
            conf.append(sum(s for s, _ in sel) / len(sel))
            acc.append(sum(1 for _, y in sel if y) / len(sel))
    return conf, acc


def write_report(
    reports: Sequence[EvalReport], out: Path, *, title: str = "Warden evaluation"
) -> Path:
    """A self-contained HTML report (plotly.js embedded, so it opens offline)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "Recall per category",
            "Precision per category",
            "Recall per variant",
            "Reliability (all category scores)",
        ),
    )
    for rep in reports:
        cats = list(rep.per_category)
        fig.add_trace(
            go.Bar(
                name=f"{rep.model} recall", x=cats, y=[rep.per_category[c].recall for c in cats]
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                name=f"{rep.model} precision",
                x=cats,
                y=[rep.per_category[c].precision for c in cats],
            ),
            row=1,
            col=2,
        )
        variants = list(rep.per_variant)
        fig.add_trace(
            go.Bar(
                name=f"{rep.model} variants", x=variants, y=[rep.per_variant[v] for v in variants]
            ),
            row=2,
            col=1,
        )
        conf, acc = _reliability(rep)
        fig.add_trace(
            go.Scatter(name=f"{rep.model} reliability", x=conf, y=acc, mode="lines+markers"),
            row=2,
            col=2,
        )
    fig.add_trace(
        go.Scatter(
            name="perfect calibration", x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}
        ),
        row=2,
        col=2,
    )
    fig.update_layout(title=title, barmode="group", height=900)
    rows_html = "".join(
        f"<tr><td>{html.escape(r.model)}</td><td>{r.n}</td><td>{_fmt(r.average_recall)}</td>"
        f"<td>{_fmt(r.adversarial_recall)}</td><td>{_fmt(r.retention)}</td>"
        f"<td>{_fmt(r.ece)}</td><td>{_fmt(r.unparsable_rate)}</td>"
        f"<td>{_fmt(r.benign_flag_rate)}</td><td>{r.n_retention}</td>"
        f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in sorted(r.ocr_sources.items())))}</td>"
        "</tr>"
        for r in reports
    )
    table = (
        "<table border=1 cellpadding=4><tr><th>model</th><th>items</th><th>average recall</th>"
        "<th>adversarial recall</th><th>retention</th><th>ECE</th><th>unparsable</th>"
        "<th>benign flag rate</th><th>retention rows</th><th>OCR hint source (rows)</th></tr>"
        f"{rows_html}</table>"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = fig.to_html(include_plotlyjs=True, full_html=True)
    head = f"<body><h2>{html.escape(title)}</h2>{table}"
    out.write_text(page.replace("<body>", head, 1), encoding="utf-8")
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"
