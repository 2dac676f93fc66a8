"""Build a training dataset from the decision ledger: parquet splits, SFT rows, preference pairs.

The ledger (items, their decisions and predictions) goes through `training.curation`
(conflicts, restricted exclusion, dedup, golden freeze, hard examples, balance, replay, split),
then is written as a Hugging Face dataset on disk:

    DIR/README.md, DIR/card.json                 dataset card: counts, data hash, options
    DIR/data/items-{train,validation,golden}.parquet   one row per item (image bytes embedded)
    DIR/data/sft-{train,validation}.parquet     TRL prompt/completion rows, one per category
    DIR/data/preference-train.parquet           prompt/chosen/rejected where analysts corrected
    DIR/data/grounding-{train,validation}.parquet   where: decided categories' boxes, in the
                                                base model's own box format (training.grounding)

An item of several media (a post's images, a video's sampled frames: `storage.media`) is one
row: `image` is its cover, as for every item, and, when the build holds any such item, the
columns `images` (every medium in order, cover first) and `media` (per medium: key, position,
kind, the label the scorer names it by — "Image 2", "Frame 3 (1.5 s)" — its timestamp and its
OCR text) are written; a single image's row has both empty (`row_images` reads either kind).
A post keeps at most `max_images` images and a video `max_frames` frames (the ingest limits,
`limits.max_images_per_post` and `limits.video_sample_frames`; the rest are counted as
`media_truncated`). Its SFT, preference and grounding prompts are the scorer's multi-image
prompt: one image placeholder per medium and one labelled OCR line each ('Image 2 text:
"..."'), built by the same `model.prompts.build_messages(media_ocr=...)`; `load_trl_split`
attaches the item's every image in that order, and `row_input` turns an items row into the
scorer's input (checkpoint choice scores validation so). The card records `schema_version`
(SCHEMA_VERSION: 2 since items carry several media). Such a row's `key` is
`curation.media_key` of its media in order (a single image's is its sha256): dedup compares
posts image by image, so two posts that share a cover are two rows, and items that share an
image are held out together (golden, validation). `export_manifest` (`warden dataset export`)
writes a split back as files + a manifest that ingest reads as the same posts.

The build streams: images are read (blob store, replay files) one parquet row group at a
time and SFT/preference rows are written `ROWS_PER_GROUP` at a time; only the curated item
metadata is held whole.

SFT and preference prompts come from `model.prompts.build_messages` with the image's OCR text
(the text the serving backend put in its prompt), so training and serving prompts are the same;
completions are "Yes"/"No", the answers the shared-prefix scorer reads. Every prompt (SFT,
preference, grounding) is in one prompt layout (`BuildOptions.layout`, model.prompts: the one
the base model declares), recorded as the card's "layout" (`card_layout`; a card without it is
"question") and, when not "question", in the data hash. `load_trl_split` attaches
the images to SFT/preference rows for TRL. The golden split is never trained on, and once an
image is golden it stays golden in every later build (tracked in the `datasets` table). Golden
also holds `golden_fraction` of the replay/general pool (origin "replay:..."): the retention
rows on which the promotion gate checks that nothing old is forgotten (`warden eval --dataset`).

Labels that name one category: many sources label the primary violation only (a drug sale ad
"drugs", never also "illegal_ads"). When the build's decisions carry several labels far less
often than the replay pool does (`curation.labels_look_complete`), a decision with one label
leaves the categories the policy pairs with it (`curation.label_pairs`) unanswered: no SFT row,
unless the analyst removed the model's own flag there. Trained as "No", those rows taught a
turn on 300 such corrections to forget illegal ads it caught (issue 18). The card counts the
rows left out per category (`unanswered`), the pairs and both multi-label shares;
`BuildOptions.single_labels_partial=False` (`--single-labels complete`) answers everything.

Run: warden dataset build --out datasets/2026-11-22 [--replay-ratio 0.3] [--since 2026-11-01]
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from model import prompts
from model.reading import Reader
from storage.audit import record_audit
from storage.errors import Conflict, WardenError
from storage.models import Dataset as DatasetRow
from storage.models import Decision as DecisionRow
from storage.models import Item, Prediction, User
from storage.policy import SAFE, Policy
from training import curation
from training.curation import (
    CuratedItem,
    CuratedMedium,
    LedgerDecision,
    LedgerItem,
    LedgerPrediction,
)

if TYPE_CHECKING:
    from model.backends import ScoringInput

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "golden")
# 1: one image per item row. 2: rows of items with several media carry `images` and `media`
# (the columns exist in a build that holds any such item).
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class BuildOptions:
    replay_ratio: float = 0.3
    since: datetime | None = None
    val_fraction: float = 0.1
    golden_fraction: float = 0.1
    golden_max: int | None = 1000
    # This share of the replay pool (class-stratified, after the retention rows) is held out
    # into validation and never trained on: checkpoint choice and threshold fitting then see
    # the original categories' positives, so a threshold is not raised where the corrections'
    # few validation rows hold none of a category to lose (model.calibration.fit_thresholds).
    replay_val_fraction: float = 0.1
    hard_margin: float = 0.15
    hard_repeat: int = 2  # hard examples appear this many times in the SFT train rows
    balance_cap: float = 3.0
    dedup_distance: int = 4
    seed: int = 0
    # Replay sources: an earlier dataset's train split (default: the latest registered one)
    # and/or a SynthMod / general JSONL manifest.
    replay_from: Path | None = None
    replay_manifest: Path | None = None
    # Learn the character swaps the corrections show (leetspeak, look-alikes) and write a
    # reader for them (model.reading) beside the dataset; SFT prompts are read through it.
    learn_reading: bool = True
    # When the decisions carry several labels far less often than the replay pool does
    # (`training.curation.labels_look_complete`), a decision with one label answers the
    # categories the policy pairs with it (co-labels in the replay pool and in multi-label
    # decisions, `training.curation.label_pairs`) only where the analyst removed the model's
    # own flag: many sources label the primary violation alone, and a "No" on illegal_ads for
    # a drug sale ad teaches forgetting. False: every decision answers every category.
    single_labels_partial: bool = True
    # Harmless text from other generators (training.benign: Faker, Mimesis, wordfreq) as
    # negatives, this share of the train items; when the build learns a reader, as many more
    # harmless texts (generated ones and the replay's harmless text) written through its
    # channel: negatives in the evasion, so post-training learns the writing, not "unusual
    # text is harmful" (issue 18).
    benign_share: float = 0.1
    # Harmless generated text held out of training (training.benign.heldout_benign_texts:
    # locales, providers and seeds the negatives never use), this many rows in golden and in
    # validation; with a reader, half of each written through its channel. The gate's benign
    # flag rate line bounds the rise on golden's harmless rows, and a few dozen ledger rows
    # cannot bound it near the tolerance (training.gate); checkpoint choice reads validation's.
    benign_golden: int = 0
    benign_validation: int = 0
    # At least this many of the replay pool's harmless items among the retention rows (topped
    # up past `golden_fraction`, as many as the pool holds): the gate's retention benign flag
    # rate line bounds the rise on them, and on the ~130 a 10% stratified share gives, one row
    # the candidate newly flags bounds the rise near 3 points, over a 2-point tolerance, so the
    # line refuses whatever the candidate does (training.gate). 0: the stratified share alone.
    retention_benign: int = 0
    # At least this many retention rows carrying each category the replay pool holds (topped
    # up the same way): the gate's per-category lines compare recall on them with a 3-point
    # tolerance, and on the ~53 rows a category gets from a 10% share of 4,800 renders two rows
    # are 3.8 points, so a candidate that lost two rows and gained none in one category (a
    # turn's ordinary churn: 5 lost and 5 gained of 350 harmful rows) is refused as forgetting.
    # 0: the stratified share alone.
    retention_per_category: int = 0
    # Grounding rows (training.grounding) answer in this model's box format: internvl,
    # qwen2_vl or qwen2_5_vl (training.grounding.format_for_base picks by a base model).
    grounding_format: str = "internvl"
    # qwen2_5_vl only: the base processor's resize (training.grounding.resize_for_base:
    # factor, min_pixels, max_pixels); None is the model card's.
    grounding_resize: dict[str, int] | None = None
    # An item's media kept in its rows: a post's first `max_images` images, a video's first
    # `max_frames` frames (the CLI passes the ingest limits, limits.max_images_per_post and
    # limits.video_sample_frames); the scorer's prompt for a new item never holds more.
    max_images: int = 10
    max_frames: int = 64
    # The prompt layout (model.prompts: "question" or "policy") every prompt is written in:
    # the layout the base model declares (model.prompts.model_layout), which post-training
    # checks the dataset against and the candidate then declares (issue 19).
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT
    name: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    path: str
    data_hash: str
    counts: dict[str, Any]
    card: dict[str, Any]


# --- reading the ledger ---------------------------------------------------------------------


def read_ledger(session: Session) -> list[LedgerItem]:
    """Every item that has at least one decision, with its decisions and predictions."""
    users = dict(session.execute(select(User.id, User.username)).all())
    # Columns, not ORM objects, streamed: the ledger's decisions are never all rows at once.
    rows = session.execute(
        select(
            DecisionRow.id,
            DecisionRow.item_id,
            DecisionRow.categories,
            DecisionRow.action,
            DecisionRow.source,
            DecisionRow.reviewer_id,
            DecisionRow.reviewer_name,
            DecisionRow.created_at,
            DecisionRow.supersedes_id,
            User.role,
        )
        .outerjoin(User, DecisionRow.reviewer_id == User.id)
        .order_by(DecisionRow.item_id, DecisionRow.created_at, DecisionRow.id)
        .execution_options(yield_per=2000)
    )
    decisions: dict[int, list[LedgerDecision]] = {}
    for d in rows:
        decisions.setdefault(d.item_id, []).append(
            LedgerDecision(
                id=d.id,
                categories=tuple(d.categories or ()),
                action=d.action,
                source=d.source,
                role=curation.role_of(d.source, d.role),
                reviewer=users.get(d.reviewer_id) if d.reviewer_id else d.reviewer_name,
                created_at=d.created_at,
                supersedes_id=d.supersedes_id,
            )
        )
    if not decisions:
        return []
    preds: dict[int, list[LedgerPrediction]] = {}
    ids = sorted(decisions)
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        for p in session.scalars(
            select(Prediction)
            .where(Prediction.item_id.in_(part))
            .order_by(Prediction.item_id, Prediction.created_at, Prediction.id)
        ):
            preds.setdefault(p.item_id, []).append(
                LedgerPrediction(
                    scores=dict(p.scores or {}),
                    flagged=tuple(p.flagged or ()),
                    model_version=p.model_version,
                    ocr_text=p.ocr_text,
                    created_at=p.created_at,
                )
            )
    items: list[LedgerItem] = []
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        for it in session.scalars(select(Item).where(Item.id.in_(part)).order_by(Item.id)):
            items.append(
                LedgerItem(
                    item_id=it.id,
                    key=it.view_sha256 or it.blob_sha256,
                    phash=it.phash,
                    text=it.text,
                    decisions=tuple(decisions[it.id]),
                    predictions=tuple(preds.get(it.id, ())),
                    meta=dict(it.meta or {}),
                )
            )
    return items


def frozen_golden(session: Session) -> set[str]:
    """Image keys golden in any earlier build: they stay golden forever."""
    keys: set[str] = set()
    for card in session.scalars(select(DatasetRow.card)):
        keys.update((card or {}).get("golden_keys") or [])
    return keys


def labelstudio_kappa(session: Session) -> dict[str, float]:
    """Label Studio inter-annotator agreement (kappa per category) for the dataset card, when
    the integration is installed; per-item conflicts are settled by `curation.resolve_labels`
    (role, then recency; several annotators vote per category)."""
    try:
        from training.labelstudio.agreement import category_agreement
    except ImportError:
        return {}
    try:
        with session.begin_nested():
            return dict(category_agreement(session))
    except Exception:  # agreement is informative only; a missing table must not stop a build
        log.warning("Label Studio agreement unavailable", exc_info=True)
        return {}


def _ocr_of(item: LedgerItem) -> str:
    for p in reversed(item.predictions):
        if p.ocr_text is not None:
            return p.ocr_text
    meta_ocr = item.meta.get("ocr_text") or item.meta.get("rendered_text")
    return str(meta_ocr) if meta_ocr else ""


def curate_ledger(
    items: Sequence[LedgerItem], policy: Policy, options: BuildOptions
) -> tuple[list[CuratedItem], dict[str, int]]:
    """Resolve, filter and annotate ledger items (no split yet); returns (items, stats)."""
    stats: Counter[str] = Counter()
    out: list[CuratedItem] = []
    for item in items:
        reason = curation.restricted_reason(item, policy)
        if reason:
            stats["excluded_restricted"] += 1
            continue
        res = curation.resolve_labels(item.decisions)
        if res is None:
            stats["excluded_retracted"] += 1
            continue
        try:
            labels = tuple(policy.validate_labels(list(res.labels)))
        except ValueError:
            stats["excluded_unknown_category"] += 1
            continue
        stats["conflicts_resolved"] += res.conflict
        pred = item.latest_prediction
        out.append(
            CuratedItem(
                key=item.key,
                item_id=item.item_id,
                labels=labels,
                ocr_text=_ocr_of(item),
                text=item.text,
                phash=item.phash,
                role=res.role,
                agreement=res.agreement,
                conflict=res.conflict,
                hard=curation.is_hard(labels, pred, policy, options.hard_margin),
                model_flagged=tuple(policy.flagged(pred.scores)) if pred else None,
                variant=str(item.meta.get("variant") or "clean"),
                family=str(item.meta["family"]) if item.meta.get("family") else None,
            )
        )
    return out, dict(stats)


def attach_media(
    session: Session, items: Sequence[CuratedItem], options: BuildOptions
) -> tuple[list[CuratedItem], dict[str, int]]:
    """Ledger items of several media (`storage.media`) with their media, in order, each labelled
    and with its OCR text as the scoring worker stored them; a post capped at `max_images`, a
    video at `max_frames`; such an item's key becomes `curation.media_key` of the media kept.
    Items of one medium are returned as they were (the N = 1 case)."""
    from storage.media import media_for

    ids = [it.item_id for it in items if it.item_id is not None]
    found: dict[int, tuple[CuratedMedium, ...]] = {}
    cover_ocr: dict[int, str] = {}
    phashes: dict[int, tuple[str | None, ...]] = {}
    truncated = 0
    for start in range(0, len(ids), 500):
        for item_id, media in media_for(session, ids[start : start + 500]).items():
            cap = options.max_frames if media[0].kind == "frame" else options.max_images
            if len(media) > cap:
                truncated += 1
                media = media[: max(1, cap)]
                if len(media) == 1:  # capped to its cover: the N = 1 case, the cover's OCR
                    cover_ocr[item_id] = media[0].ocr_text or ""
            if len(media) < 2:
                continue
            found[item_id] = tuple(
                CuratedMedium(
                    key=m.image_sha256,
                    position=m.position,
                    kind=m.kind,
                    label=m.label,
                    timestamp_s=m.timestamp_s,
                    ocr_text=m.ocr_text or "",
                )
                for m in media
            )
            phashes[item_id] = tuple(m.phash for m in media)
    out = []
    for it in items:
        if it.item_id in found:
            # Keyed by its ordered media, not its cover: two posts that share a cover image
            # are two items (dedup, splits, rows), the same images in the same order are one.
            media = found[it.item_id]
            key = curation.media_key([m.key for m in media])
            it = replace(it, key=key, media=media, media_phash=phashes[it.item_id])
        elif it.item_id in cover_ocr:
            it = replace(it, ocr_text=cover_ocr[it.item_id])
        out.append(it)
    stats = {"media_truncated": truncated} if truncated else {}
    return out, stats


def _is_since(item: LedgerItem, since: datetime | None) -> bool:
    if since is None:
        return True
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    return any(d.created_at >= since for d in item.decisions)


# --- replay sources -------------------------------------------------------------------------


def _replay_from_dataset(path: Path) -> list[CuratedItem]:
    """The train rows of an earlier build, without their images (read in batches: the image
    column is fetched later, only for the rows replay picks, by `_copy_replay_images`)."""
    import pyarrow.parquet as pq

    file = Path(path) / "data" / "items-train.parquet"
    if not file.is_file():
        raise WardenError(f"replay dataset {path} has no data/items-train.parquet")
    name = Path(path).name
    parquet = pq.ParquetFile(file)
    columns = [c for c in parquet.schema_arrow.names if c not in ("image", "images")]
    items = []
    for batch in parquet.iter_batches(batch_size=1024, columns=columns):
        for r in batch.to_pylist():
            items.append(
                CuratedItem(
                    key=r["key"],
                    item_id=None,
                    labels=tuple(r["labels"]),
                    ocr_text=r["ocr_text"] or "",
                    text=r["text"],
                    phash=r.get("phash"),
                    variant=r.get("variant") or "clean",
                    family=r.get("family"),
                    origin=f"replay:{name}",
                    media=tuple(CuratedMedium(**m) for m in r.get("media") or ()),
                )
            )
    return items


def _copy_replay_images(path: Path, keys: set[str], scratch: Path) -> dict[str, Path]:
    """Copy the images of the items `keys` (a post's or video's every medium) out of an
    earlier build's train file into `scratch`, one row group at a time; returns image key ->
    file."""
    import pyarrow.parquet as pq

    files: dict[str, Path] = {}
    parquet = pq.ParquetFile(Path(path) / "data" / "items-train.parquet")
    multi = {"images", "media"} <= set(parquet.schema_arrow.names)
    columns = ["key", "image"] + (["images", "media"] if multi else [])
    for group in range(parquet.num_row_groups):
        # One row group's keys first: a group holding none of the wanted images is not read.
        group_keys = parquet.read_row_group(group, columns=["key"]).column("key").to_pylist()
        if keys.isdisjoint(group_keys):
            continue
        batches = parquet.iter_batches(batch_size=64, row_groups=[group], columns=columns)
        for batch in batches:
            for r in batch.to_pylist():
                if r["key"] not in keys:
                    continue
                # A post's or video's key is its ordered media's (curation.media_key), not
                # an image: its images are copied under their own keys, cover first.
                if multi and r["media"]:
                    found = [
                        (m["key"], im["bytes"])
                        for m, im in zip(r["media"], r["images"], strict=True)
                    ]
                else:
                    found = [(r["key"], r["image"]["bytes"])]
                for key, data in found:
                    if key not in files:
                        files[key] = scratch / key
                        files[key].write_bytes(data)
    return files


def _replay_from_manifest(path: Path, policy: Policy) -> tuple[list[CuratedItem], dict[str, Path]]:
    """Manifest rows as replay items, with key (sha256 of the image) -> image file; a post's
    row (`images`) is one item of every image, keyed by them in order like a ledger post."""
    from training.evaluate import read_manifest

    items, files = [], {}
    restricted = policy.restricted_ids
    for row in read_manifest(path, policy):
        if restricted.intersection(row.labels):
            continue
        media: tuple[CuratedMedium, ...] = ()
        if row.media:  # a post row (`images`, as export_manifest writes a post or video)
            media = tuple(
                CuratedMedium(
                    key=hashlib.sha256(m.image).hexdigest(),
                    position=n,
                    kind="frame" if m.label.startswith("Frame") else "image",
                    label=m.label,
                    ocr_text=m.ocr_text or "",
                )
                for n, m in enumerate(row.media)
            )
            for m, em in zip(media, row.media, strict=True):
                files[m.key] = em.path or row.path
            key = curation.media_key([m.key for m in media])
        else:
            key = hashlib.sha256(row.path.read_bytes()).hexdigest()
            files[key] = row.path
        items.append(
            CuratedItem(
                key=key,
                item_id=None,
                labels=row.labels,
                ocr_text=row.ocr_text or "",
                text=row.text,
                variant=row.variant,
                family=row.family,
                origin="replay:synth",
                media=media,
            )
        )
    return items, files


def _learn_reading(
    train: Sequence[CuratedItem], pool: Sequence[CuratedItem]
) -> tuple[Reader | None, dict[str, Any]]:
    """A reader for the character swaps the train corrections show, against the replay text,
    and a report for the card (what normalisation did; swaps kept and refused, with evidence).

    No reader when they show none (the usual case: ordinary corrections), when the evidence is
    too thin, or when every swap would change a plain word of the replay text
    (`training.substitutions.safe_reader`). Its lexicon is the plain words of the replay text
    plus an English word list, so words the corrections never used are read back too.

    When no swap is learnt but normalisation (`model.normalise`: splits and separators,
    zero-width characters, look-alikes, NFKC) changed words of at least `MIN_NORMALISED` train
    texts, the reader is normalisation alone (an empty channel): serving then joins "f.r.e.e"
    as the dataset's prompts did. Refused when normalisation changes a plain word of the replay
    text (`plain_words_lost`). Replay text is not all plain: SynthMod's own rows carry splits
    and look-alikes ("g o n e", "Throwba.ck"), and normalisation rightly joins those; refusing
    on any changed replay text refused every split turn (54 of 600 replay texts changed, none
    of them in a plain word).
    """
    from model.normalise import Changes, normalise, normalise_text
    from model.reading import MIN_WORD, Channel, Reader, lexicon_of
    from training.lexicon import english_words
    from training.substitutions import Evidence, estimate_channel, safe_reader

    observed = [it.ocr_text for it in train if it.ocr_text]
    done = Changes()
    normalised = 0
    for text in observed:
        changes = normalise(text)[1]
        done.add(changes)
        normalised += changes.joined + changes.invisible + changes.confusables + changes.nfkc > 0
    report: dict[str, Any] = {"normalisation": done.to_json(), "swaps": None}
    reference = [it.ocr_text for it in pool if it.ocr_text]
    if not reference:
        return None, report
    evidence = Evidence()
    channel = estimate_channel(observed, reference, evidence=evidence)
    report["swaps"] = evidence.to_json()
    lexicon = lexicon_of(reference)
    for word in english_words(min_len=MIN_WORD):  # lower-case ASCII letters: plain words
        lexicon.setdefault(word, 1)
    reader = None if channel.empty else safe_reader(channel, lexicon, reference, evidence)
    report["swaps"] = evidence.to_json()
    if reader is None and normalised >= MIN_NORMALISED:
        words = frozenset(english_words(min_len=PLAIN_MIN))
        read = [normalise_text(t) for t in reference]
        lost = [plain_words_lost(t, r, words) for t, r in zip(reference, read, strict=True)]
        report["normalisation_only"] = {
            "train_texts": normalised,
            "replay_changed": sum(r != t for t, r in zip(reference, read, strict=True)),
            "replay_plain_words_changed": sum(lost),
        }
        if sum(lost):
            log.info("normalisation refused: it changes %d plain replay words", sum(lost))
            return None, report
        log.info("corrections show splits/separators in %d texts: reader normalises", normalised)
        return Reader(Channel({}, 0, 0, normalised), lexicon), report
    if reader is None:
        if not channel.empty:
            log.info("character swaps refused: they change plain replay words")
        return None, report
    log.info("corrections show character swaps: %s", reader.channel.summary(8))
    return reader, report


# Train texts normalisation must change before a build's reader is normalisation alone.
MIN_NORMALISED = 10
# Plain words, for the normalisation check: dictionary words of at least this many letters.
PLAIN_MIN = 3
# English words of one or two letters (a closed class), never taken for a wrapped fragment.
SHORT_WORDS = frozenset(
    "a i o ah am an as at ax be by do eh go ha he hi ho if in is it la lo ma me mr ms mu my "
    "no of oh ok on or ow ox pa so to uh um up us we ya ye yo".split()
)
_EDGE = "\"'()[]{}<>,;:!?¡¿«»“”‘’…"


# A piece of 4+ letters written at least this often in English (wordfreq's Zipf scale: 3 is
# once per million words) is a word, not a fragment of one (`plain_words_lost`).
FRAGMENT_MAX_ZIPF = 3.0


def plain_words_lost(raw: str, read: str, words: frozenset[str]) -> int:
    """How many plain words of `raw` are missing from `read`: tokens made of dictionary words
    (`words`, `PLAIN_MIN`+ letters, joined by - . or ' as in "well-known"), matched by count.
    Fragments ("g o n e", "Throwba.ck", "ma-ke") and look-alike spellings are not plain.

    A plain word joined with a neighbouring fragment into a dictionary word is not lost: "sp
    read" (a word wrapped across lines) read as "spread", "eve ry" as "every", "ever ybody" as
    "everybody". A fragment is a piece of letters that is no word: of at most 3 letters, not a
    3-letter word of the encoder's vocabulary nor one of English's short function words
    (`SHORT_WORDS`; the vocabulary's word pieces hold "sp" and "ry" too); of 4 or more, in
    neither the English word list nor written once per million words (wordfreq Zipf <
    `FRAGMENT_MAX_ZIPF`: "ybody" 0, "comple" 1.9, "hine" 2.5). Word lists leave out offensive
    words ("rapist" is in none of ours; its Zipf is 3.6), which is why the frequency decides.
    So joining two words ("in side", "the rapist") or rewriting one still loses it."""
    from training.lexicon import english_words

    vocab = frozenset(english_words(min_len=1))
    words3 = frozenset(english_words(min_len=3))
    after = Counter(tok.strip(_EDGE).lower() for tok in read.split())
    toks = raw.split()
    lost = 0

    def fragment(tok: str) -> bool:
        core = tok.strip(_EDGE).lower()
        if not core.isalpha() or core in words3 | SHORT_WORDS:
            return False
        if len(core) <= 3:
            return True
        from wordfreq import zipf_frequency

        return core not in vocab and zipf_frequency(core, "en") < FRAGMENT_MAX_ZIPF

    def plain(tok: str) -> bool:
        core = tok.strip(_EDGE).rstrip(".").lower()
        parts = core.replace("-", " ").replace(".", " ").replace("'", " ").split()
        return bool(parts) and all(len(p) >= PLAIN_MIN and p in words for p in parts)

    for i, tok in enumerate(toks):
        if not plain(tok):
            continue
        core = tok.strip(_EDGE).rstrip(".").lower()
        key = tok.strip(_EDGE).lower()
        joined = [
            (toks[j].strip(_EDGE).lower() + core if j < i else core + toks[j].strip(_EDGE).lower())
            for j in (i - 1, i + 1)
            if 0 <= j < len(toks) and fragment(toks[j])
        ]
        joined = [w for w in joined if w.rstrip(".") in vocab]
        if after[key] > 0:
            after[key] -= 1
        elif after[core] > 0:
            after[core] -= 1
        elif any(after[w.rstrip(".")] > 0 or after[w] > 0 for w in joined):
            continue
        else:
            lost += 1
    return lost


def benign_negatives(
    n: int,
    seed: int,
    reader: Reader | None,
    replay: Sequence[CuratedItem],
    size: int = 224,
) -> tuple[list[CuratedItem], dict[str, bytes]]:
    """`n` harmless generated texts drawn as images, and with a reader `n` more written through
    its channel (half generated text, half the replay's harmless OCR text); with key -> PNG.
    Keys are the images' sha256, like every other item's.

    A text the channel leaves as it was (Korean or Chinese under a Latin swap, anything under a
    reader that learnt no swap) is not written in the evasion: it would be one more plain
    harmless row, and in one script. At 0.3 of a swap turn's train items 29 of 73 "evasion"
    negatives were such Korean and Chinese rows, which took the train set's Korean and Chinese
    rows to more harmless than harmful (63 to 54, Latin 185 to 286), and 7 of the 11 original
    rows that turn lost were Korean or Chinese. So the evasion half is drawn among the texts
    the channel changes, and where there are too few (no swap learnt), the rest are plain
    generated negatives like the first half."""
    import random

    from training.benign import BenignText, benign_texts, write_in_channel

    if n <= 0:
        return [], {}
    texts = benign_texts(n if reader is None else 4 * n, seed)
    rows: list[tuple[Any, str, str]] = []  # (BenignText-like, origin, variant)
    for t in texts[:n]:
        rows.append((t, f"benign:{t.source.rsplit(':', 1)[0]}", "clean"))
    if reader is not None:
        rng = random.Random(f"evasion-negatives:{seed}")
        subs = reader.channel.subs
        plain = [it.ocr_text for it in replay if not it.labels and it.ocr_text]
        rng.shuffle(plain)

        def written(sources: list[tuple[str, str, str]], want: int) -> list[tuple[int, Any]]:
            """(index, text written in the channel) of the first `want` sources it changes."""
            out: list[tuple[int, Any]] = []
            for i, (text, lang, source) in enumerate(sources):
                if len(out) == want:
                    break
                w = write_in_channel(text, subs, rng)
                if w != text:
                    out.append((i, BenignText(w, source, lang)))
            return out

        spare = texts[n:]
        from_replay = written([(t, "en", "replay") for t in plain], n // 2)
        generated = written([(t.text, t.lang, t.source) for t in spare], n - len(from_replay))
        rows += [(t, "benign-evasion", "evasion") for _, t in from_replay + generated]
        used = {i for i, _ in generated}
        rest = [t for i, t in enumerate(spare) if i not in used]
        for t in rest[: n - len(from_replay) - len(generated)]:
            rows.append((t, f"benign:{t.source.rsplit(':', 1)[0]}", "clean"))
    return _render_benign(rows, seed, size)


def benign_held_out(
    n_golden: int, n_validation: int, seed: int, reader: Reader | None, size: int = 224
) -> tuple[list[CuratedItem], list[CuratedItem], dict[str, bytes]]:
    """Harmless rows never trained on, for golden and validation (`BuildOptions.benign_golden`
    and `benign_validation`): `training.benign.heldout_benign_texts` (other locales, providers
    and seeds than the negatives), drawn as images; with a reader, every other row written
    through its channel (origin "benign-heldout-evasion"), the harmless side of the evasion
    the turn teaches, where the channel changes it (a row it leaves as it was is a plain row).
    Returns (golden, validation, key -> PNG)."""
    import random

    from training.benign import BenignText, heldout_benign_texts, write_in_channel

    if n_golden + n_validation <= 0:
        return [], [], {}
    texts = heldout_benign_texts(n_golden + n_validation, seed)
    rng = random.Random(f"heldout-evasion:{seed}")
    rows: list[tuple[Any, str, str]] = []
    for i, t in enumerate(texts):
        written = write_in_channel(t.text, reader.channel.subs, rng) if reader and i % 2 else ""
        if written and written != t.text:  # a text the channel leaves as it was stays plain
            rows.append(
                (BenignText(written, t.source, t.lang), "benign-heldout-evasion", "evasion")
            )
        else:
            rows.append((t, f"benign-heldout:{t.source.rsplit(':', 1)[0]}", "clean"))
    items, images = _render_benign(rows, seed + 1, size)
    return items[:n_golden], items[n_golden:], images


def _render_benign(
    rows: Sequence[tuple[Any, str, str]], seed: int, size: int
) -> tuple[list[CuratedItem], dict[str, bytes]]:
    """(BenignText, origin, variant) rows drawn as SynthMod images; with key -> PNG."""
    from training.benign import benign_specs
    from training.synth import render_sample

    specs = benign_specs([r[0] for r in rows], seed, size)
    items, images = [], {}
    for spec, (_, origin, variant) in zip(specs, rows, strict=True):
        image, rec = render_sample(spec)
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)
        key = hashlib.sha256(buf.getvalue()).hexdigest()
        images[key] = buf.getvalue()
        items.append(
            CuratedItem(
                key=key,
                item_id=None,
                labels=(),
                ocr_text=rec["rendered_text"],
                text=None,
                variant=variant,
                family=spec.family,
                origin=origin,
            )
        )
    return items, images


def _latest_dataset_path(session: Session) -> Path | None:
    for row in session.scalars(select(DatasetRow).order_by(DatasetRow.created_at.desc())):
        if (Path(row.path) / "data" / "items-train.parquet").is_file():
            return Path(row.path)
    return None


# --- TRL rows -------------------------------------------------------------------------------


def _ocr_as_read(item: CuratedItem, read: Callable[[str], str] | None) -> str:
    return read(item.ocr_text) if read is not None and item.ocr_text else item.ocr_text


def media_ocr(
    item: CuratedItem, read: Callable[[str], str] | None = None
) -> list[tuple[str, str]] | None:
    """(label, OCR text as read) per medium, as the scorer's `ScoringInput.media_ocr` gives
    `model.prompts.build_messages` (its backend reads each medium's OCR text through the
    reader); None for a single image (the plain OCR hint)."""
    if len(item.media) <= 1:
        return None
    return [
        (m.label, read(m.ocr_text) if read is not None and m.ocr_text else m.ocr_text)
        for m in item.media
    ]


def item_messages(
    item: CuratedItem,
    policy: Policy,
    question: str,
    *,
    read: Callable[[str], str] | None = None,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
) -> list[dict[str, Any]]:
    """The prompt of one question about `item`: the scorer's in `layout`, with all its media."""
    return prompts.build_messages(
        policy,
        text=item.text,
        ocr_text=_ocr_as_read(item, read),
        question=question,
        layout=layout,
        media_ocr=media_ocr(item, read),
    )


def sft_rows(
    item: CuratedItem,
    policy: Policy,
    *,
    read: Callable[[str], str] | None = None,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
    unanswered: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """One prompt/completion row per policy category (the scorer asks each question, in
    `layout`), less the `unanswered` ones (`training.curation.unanswered`); the OCR hint passes
    through `read` (the dataset's reader) as it will at serving time."""
    rows = []
    for cat in policy.categories:
        if cat.id in unanswered:
            continue
        question = prompts.category_question(cat, layout)
        rows.append(
            {
                "key": item.key,
                "category": cat.id,
                "prompt": item_messages(item, policy, question, read=read, layout=layout),
                "completion": prompts.answer_messages(prompts.yes_no(cat.id in item.labels)),
                "origin": item.origin,
            }
        )
    return rows


def preference_rows(
    item: CuratedItem,
    policy: Policy,
    *,
    read: Callable[[str], str] | None = None,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
) -> list[dict[str, Any]]:
    """Where the analyst's answer differs from the model's: chosen = analyst, rejected = model."""
    if item.model_flagged is None:
        return []
    rows = []
    for cat in policy.categories:
        truth, model_said = cat.id in item.labels, cat.id in item.model_flagged
        if truth == model_said:
            continue
        rows.append(
            {
                "key": item.key,
                "category": cat.id,
                "prompt": item_messages(
                    item, policy, prompts.category_question(cat, layout), read=read, layout=layout
                ),
                "chosen": prompts.answer_messages(prompts.yes_no(truth)),
                "rejected": prompts.answer_messages(prompts.yes_no(model_said)),
            }
        )
    return rows


# --- writing --------------------------------------------------------------------------------


_ITEM_COLUMNS = (
    "key", "item_id", "image", "labels", "ocr_text", "text", "phash", "role", "agreement",
    "conflict", "hard", "model_flagged", "variant", "family", "origin", "split",
)  # fmt: skip

# SFT and preference files are written this many rows per row group (a file that fits in one
# group is byte for byte what one `pq.write_table` of all rows writes).
ROWS_PER_GROUP = 8192


_MEDIA_COLUMNS = ("images", "media")


def _item_features(with_media: bool = False) -> Any:
    import datasets

    media: dict[str, Any] = {}
    if with_media:
        media = {
            "images": datasets.List(datasets.Image()),
            "media": datasets.List(
                {
                    "key": datasets.Value("string"),
                    "position": datasets.Value("int64"),
                    "kind": datasets.Value("string"),
                    "label": datasets.Value("string"),
                    "timestamp_s": datasets.Value("float64"),
                    "ocr_text": datasets.Value("string"),
                }
            ),
        }
    return datasets.Features(
        {
            "key": datasets.Value("string"),
            "item_id": datasets.Value("int64"),
            "image": datasets.Image(),
            "labels": datasets.List(datasets.Value("string")),
            "ocr_text": datasets.Value("string"),
            "text": datasets.Value("string"),
            "phash": datasets.Value("string"),
            "role": datasets.Value("string"),
            "agreement": datasets.Value("float64"),
            "conflict": datasets.Value("bool"),
            "hard": datasets.Value("bool"),
            "model_flagged": datasets.List(datasets.Value("string")),
            "variant": datasets.Value("string"),
            "family": datasets.Value("string"),
            "origin": datasets.Value("string"),
            "split": datasets.Value("string"),
            **media,
        }
    )


def _item_columns(
    items: Sequence[CuratedItem], image: Callable[[str], bytes], with_media: bool = False
) -> dict[str, list]:
    names = _ITEM_COLUMNS + (_MEDIA_COLUMNS if with_media else ())
    cols: dict[str, list[Any]] = {k: [] for k in names}
    for it in items:
        d = asdict(it)
        for k in names:
            if k == "image":
                cols[k].append({"bytes": image(it.cover), "path": None})
            elif k == "images":
                cols[k].append([{"bytes": image(m.key), "path": None} for m in it.media])
            elif k == "media":
                cols[k].append([asdict(m) for m in it.media])
            elif k in ("labels", "model_flagged"):
                cols[k].append(list(d[k]) if d[k] is not None else None)
            else:
                cols[k].append(d[k])
    return cols


def _write_items(
    path: Path,
    items: Sequence[CuratedItem],
    image: Callable[[str], bytes],
    with_media: bool = False,
) -> None:
    """One row per item (`with_media`: with its media columns), written the way
    `datasets.Dataset.to_parquet` writes the whole split (same schema, options and row groups,
    so the same bytes), holding one row group at a time.

    `datasets` sizes row groups from the split's Arrow size (about 100 MB each): that is
    measured first from the rows without their images plus the images' lengths.
    """
    import datasets
    import pyarrow.parquet as pq
    from datasets.arrow_writer import (
        get_parquet_column_options,
        get_writer_batch_size_from_data_size,
        get_writer_batch_size_from_features,
    )

    features = _item_features(with_media)
    image_bytes = 0

    def no_image(key: str) -> bytes:
        nonlocal image_bytes
        image_bytes += len(image(key))
        return b""

    skeleton = datasets.Dataset.from_dict(
        _item_columns(items, no_image, with_media), features=features
    )
    nbytes = skeleton._estimate_nbytes() + image_bytes
    batch_size = get_writer_batch_size_from_features(
        features
    ) or get_writer_batch_size_from_data_size(len(items), nbytes)
    del skeleton
    schema = features.arrow_schema
    cdc = datasets.config.DEFAULT_CDC_OPTIONS
    writer = pq.ParquetWriter(
        str(path),
        schema=schema,
        use_content_defined_chunking=cdc,
        write_page_index=True,
        **get_parquet_column_options(features, schema),
    )
    try:
        for start in range(0, len(items), batch_size):
            cols = _item_columns(items[start : start + batch_size], image, with_media)
            writer.write_table(datasets.Dataset.from_dict(cols, features=features).data.table)
            del cols
        writer.add_key_value_metadata({"content_defined_chunking": json.dumps(cdc)})
    finally:
        writer.close()


class _RowsWriter:
    """SFT or preference rows to parquet, `ROWS_PER_GROUP` at a time.

    Messages are stored as JSON text: parquet structs would turn the image block's missing
    "text" into null and differ from what model.prompts builds.
    """

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path, self.columns = path, tuple(columns)
        self.rows: list[dict[str, Any]] = []
        self.count = 0
        self._writer: Any = None

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        for r in rows:
            self.rows.append({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
            if len(self.rows) >= ROWS_PER_GROUP:
                self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        schema = pa.schema([(c, pa.string()) for c in self.columns])
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, schema)
        self._writer.write_table(pa.Table.from_pylist(self.rows, schema=schema))
        self.count += len(self.rows)
        self.rows = []

    def close(self) -> int:
        """Write what is left; returns the number of rows written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush()
        if self._writer is None:
            pq.write_table(pa.table({"key": pa.array([], pa.string())}), self.path)
        else:
            self._writer.close()
        return self.count


def _data_hash(items: Sequence[CuratedItem], reader: Reader | None = None) -> str:
    """Over the items (with their media, for items of several) and, when there is one, the
    reader their prompts were read through."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda i: (i.split, i.key)):
        row: list[Any] = [it.split, it.key, list(it.labels), it.ocr_text, it.origin]
        if it.media:
            row.append([[m.key, m.label, m.ocr_text] for m in it.media])
        h.update(json.dumps(row).encode())
    if reader is not None:
        h.update(json.dumps(reader.to_json(), sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def _media_counts(splits: dict[str, Sequence[CuratedItem]]) -> dict[str, Any]:
    """{"media": {split: items of several media, "media": their media}}; {} when none."""
    counts = {split: sum(bool(it.media) for it in items) for split, items in splits.items()}
    if not any(counts.values()):
        return {}
    n = sum(len(it.media) for items in splits.values() for it in items)
    return {"media": {**counts, "media": n}}


def _grounding_line(g: dict[str, Any] | None) -> list[str]:
    if not g:
        return []
    return [
        f"Grounding rows (boxes of decided categories, {g['format']} box format): train "
        f"{g.get('train', 0)}, validation {g.get('validation', 0)}, from {g['items']} items."
    ]


def _card_markdown(name: str, card: dict[str, Any]) -> str:
    configs = [
        ("items", [(s, f"data/items-{s}.parquet") for s in SPLITS]),
        ("sft", [(s, f"data/sft-{s}.parquet") for s in ("train", "validation")]),
        ("preference", [("train", "data/preference-train.parquet")]),
        ("grounding", [(s, f"data/grounding-{s}.parquet") for s in ("train", "validation")]),
    ]
    yaml_lines = ["---", "configs:"]
    for cfg, files in configs:
        yaml_lines += [f"- config_name: {cfg}", "  data_files:"]
        for split, path in files:
            yaml_lines += [f"  - split: {split}", f"    path: {path}"]
    yaml_lines.append("---")
    counts = card["counts"]
    body = [
        f"# Warden dataset {name}",
        "",
        "Built from the Warden decision ledger by `warden dataset build`.",
        f"Data hash: `{card['data_hash']}`. Policy: `{card['policy_version']}`. "
        f"Built {card['built_at']}. Prompt layout: `{card_layout(card)}`.",
        "",
        "| split | images | SFT rows |",
        "|---|---|---|",
    ]
    for s in SPLITS:
        body.append(f"| {s} | {counts['items'].get(s, 0)} | {counts['sft'].get(s, '-')} |")
    body += [
        "",
        f"Preference pairs (analyst corrected the model): {counts['preference']}.",
        *_grounding_line(counts.get("grounding")),
        *(
            [
                f"Items of several media (posts, videos; one row each, all media in order): "
                f"train {m['train']}, validation {m['validation']}, golden {m['golden']}, "
                f"{m['media']} media."
            ]
            if (m := counts.get("media"))
            else []
        ),
        f"Replay rows in train: {counts['replay']} (ratio {card['options']['replay_ratio']}).",
        f"Harmless negatives in train (generated text; written in the learnt evasion): "
        f"{json.dumps(counts.get('negatives', {}))}.",
        f"Hard examples in train: {counts['hard']}. Curation: {json.dumps(counts['curation'])}.",
        f"Class counts in train: {json.dumps(counts['classes_train'])}.",
        *(
            [
                f"Retention rows in golden (replay held out; the gate's per-category lines): "
                f"{counts['retention']}, per category {json.dumps(by_cat)}."
            ]
            if (by_cat := counts.get("retention_by_category"))
            else []
        ),
        *(
            [
                f"Single-label decisions leave their label's paired categories unanswered "
                f"(no SFT row; {json.dumps(counts.get('label_pairs', {}))}): "
                f"{json.dumps(unanswered)}."
            ]
            if (unanswered := counts.get("unanswered"))
            else []
        ),
    ]
    reading = card.get("reading")
    if reading is not None:
        swaps = ", ".join(
            f"`{s['intended']}`→`{s['observed']}` {s['p']:.2f}" for s in reading["substitutions"]
        )
        body += [
            "",
            f"Character swaps the corrections show ({reading['affected_items']} items, "
            f"{reading['aligned_words']} words aligned): {swaps}. `reading.json` reads them "
            f"back into {reading['lexicon_words']} known words; the SFT and preference prompts "
            "hold the OCR text as read, the item parquet files the raw OCR text.",
        ]
    report = card.get("reading_evidence")
    if report is not None:
        norm = report["normalisation"]
        body += [
            "",
            f"Normalisation of the corrected OCR text (NFKC, look-alikes, splits): "
            f"{norm['nfkc_tokens']} tokens NFKC-changed, {norm['confusables_folded']} look-alike "
            f"letters folded, {norm['invisible_dropped']} zero-width characters dropped, "
            f"{norm['words_joined']} split words joined.",
        ]
        swaps = report.get("swaps") or {}
        for kind in ("kept", "refused"):
            rows = swaps.get(kind) or []
            if rows:
                listed = "; ".join(
                    f"`{r['intended']}`→`{r['observed']}`"
                    + (f" {r['words']} words, {r['items']} items, G {r['g']}" if "g" in r else "")
                    + (f" ({r['why']})" if "why" in r else "")
                    for r in rows[:12]
                )
                body.append(f"Swaps {kind}: {listed}.")
    body += [
        "",
        "The golden split is frozen (an image once golden stays golden) and never trained on.",
        "Restricted categories never appear: items with a restricted category in any decision",
        "or in any prediction over threshold are excluded.",
    ]
    return "\n".join(yaml_lines + body) + "\n"


def build_dataset(
    session: Session,
    out: Path,
    policy: Policy,
    *,
    read_image: Callable[[str], bytes],
    options: BuildOptions | None = None,
    actor: str = "system",
) -> DatasetInfo:
    """Curate the ledger into `out` and register it in `datasets`; see the module docstring.

    `read_image(key)` returns the bytes of the image with that sha256 (the blob store).
    """
    options = options or BuildOptions()
    layout = prompts.check_layout(options.layout)
    out = Path(out).resolve()
    if (out / "card.json").exists():
        raise Conflict(f"{out} already holds a dataset; choose a new --out")
    name = options.name or out.name
    if session.scalars(select(DatasetRow).where(DatasetRow.name == name)).first():
        raise Conflict(f"a dataset named {name!r} is already registered; choose a new --out")

    ledger = read_ledger(session)
    frozen = frozen_golden(session)
    curated, stats = curate_ledger(ledger, policy, options)
    if not curated:
        raise WardenError("the ledger has no usable decisions yet; review some items first")
    curated, media_stats = attach_media(session, curated, options)
    stats.update(media_stats)
    recent_ids = {li.item_id for li in ledger if _is_since(li, options.since)}
    recent = {li.key for li in ledger if li.item_id in recent_ids}
    recent |= {it.key for it in curated if it.item_id in recent_ids}  # posts' media keys
    n_ledger = len(ledger)
    del ledger  # its decisions and scores are curated now; the rest of the build needs neither
    kept, dropped = curation.dedup(curated, max_distance=options.dedup_distance, golden=frozen)
    stats["duplicates_dropped"] = len(dropped)

    golden = curation.assign_golden(
        kept,
        frozen,
        fraction=options.golden_fraction,
        seed=options.seed,
        max_size=options.golden_max,
    )
    # A post that shares an image with a golden item (or with an image golden in an earlier
    # build) is golden too: that image is never trained on through another post. Items of one
    # image share none once deduplicated, so a build of single images is unchanged.
    golden = curation.linked(kept, golden | frozen)
    golden_items = [it for it in kept if it.key in golden]
    # A near-duplicate of a golden image must not be trained on either.
    rest = [it for it in kept if it.key not in golden and it.key in recent]
    rest, n_balanced = curation.balance(rest, cap_factor=options.balance_cap, seed=options.seed)
    stats["balanced_out"] = n_balanced
    val_keys = curation.stratified_pick(rest, options.val_fraction, options.seed, "validation")
    val_keys = curation.linked(rest, val_keys)  # and no validation image in train
    train = [it for it in rest if it.key not in val_keys]
    val = [it for it in rest if it.key in val_keys]

    # Hard examples appear hard_repeat times in the SFT rows: count them so, or the replay
    # share of the rows the model actually trains on would fall below the ratio asked for.
    n_rows = len(train) + sum(it.hard for it in train) * (max(1, options.hard_repeat) - 1)
    n_replay = curation.replay_count(n_rows, options.replay_ratio)
    pool: list[CuratedItem] = []
    src: Path | None = None
    # Replay images are read from files (the manifest's, or copied out of the replay
    # dataset); every other image from the blob store, each when its row group is written.
    image_files: dict[str, Path] = {}
    if n_replay or options.learn_reading:
        src = options.replay_from or _latest_dataset_path(session)
        if src is not None:
            pool += _replay_from_dataset(src)
        if options.replay_manifest is not None:
            items, files = _replay_from_manifest(options.replay_manifest, policy)
            pool += items
            image_files.update(files)
        if n_replay and not pool:
            log.warning("replay ratio %.2f asked but no replay source found", options.replay_ratio)
    # Retention rows: golden_fraction of the replay/general pool, held out of training into
    # the golden split (origin "replay:..."), where the gate checks that a candidate forgets
    # nothing of the old data. Frozen like every golden row.
    taken = golden | {it.key for it in rest} | set(dropped)
    held = list({it.key: it for it in pool if it.key not in taken}.values())
    retention_keys = curation.assign_golden(
        held,
        frozen,
        fraction=options.golden_fraction,
        seed=options.seed,
        max_size=options.golden_max,
    )
    retention_keys |= curation.top_up_class(
        held, retention_keys, SAFE, options.retention_benign, seed=options.seed, salt="retention"
    )
    for cat in sorted({label for it in held for label in it.labels} - {SAFE}):
        retention_keys |= curation.top_up_label(
            held,
            retention_keys,
            cat,
            options.retention_per_category,
            seed=options.seed,
            salt="retention",
        )
    retention = [it for it in held if it.key in retention_keys]
    golden_items += retention
    golden = golden | retention_keys
    val_replay = curation.sample_replay(
        [it for it in held if it.key not in retention_keys],
        min(round(options.replay_val_fraction * len(held)), options.golden_max or len(held)),
        exclude=set(),
        seed=options.seed + 1,
    )
    val = val + val_replay
    # Earlier data (older than --since) may come back as replay; golden never, and an
    # image already in this build's train/validation is not repeated.
    exclude = golden | {it.key for it in rest + val_replay} | set(dropped)
    replay = curation.sample_replay(pool, n_replay, exclude=exclude, seed=options.seed)
    reader, reading_report = _learn_reading(train, pool) if options.learn_reading else (None, None)
    read = reader.read if reader is not None else None
    negatives, negative_images = benign_negatives(
        round(options.benign_share * len(train)),
        options.seed,
        reader,
        [it for it in pool if it.key not in exclude],
    )
    # The same seed draws the same texts, so an earlier build's negatives (in the replay pool
    # through its train split) can already be golden or validation rows here: never train
    # on them.
    negatives = [it for it in negatives if it.key not in exclude]
    trained = {it.key for it in negatives} | {it.key for it in train + replay} | golden
    held_golden, held_val, held_images = benign_held_out(
        options.benign_golden, options.benign_validation, options.seed, reader
    )
    held_golden = [it for it in held_golden if it.key not in trained]
    held_val = [it for it in held_val if it.key not in trained | {i.key for i in held_golden}]
    negative_images |= held_images
    golden_items += held_golden
    golden = golden | {it.key for it in held_golden}
    val = val + held_val

    train_all = curation.with_split(train + replay + negatives, "train")
    val = curation.with_split(val, "validation")
    golden_items = curation.with_split(golden_items, "golden")

    (out / "data").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".replay-", dir=out) as scratch:
        from_dataset = {
            it.key for it in replay + retention + val_replay if it.cover not in image_files
        }
        if src is not None and from_dataset:
            image_files.update(_copy_replay_images(src, from_dataset, Path(scratch)))

        def image(key: str) -> bytes:
            if key in negative_images:
                return negative_images[key]
            file = image_files.get(key)
            return file.read_bytes() if file is not None else read_image(key)

        # The media columns are written when any item of the build has several media (a build
        # of single images writes the files it always wrote).
        with_media = any(it.media for it in train_all + val + golden_items)
        for split, rows in (("train", train_all), ("validation", val), ("golden", golden_items)):
            _write_items(out / "data" / f"items-{split}.parquet", rows, image, with_media)
    # Do the corrections name one category per item where the policy's data names several?
    ledger_kept = [it for it in kept if it.origin == "ledger"]
    reference = pool + [it for it in ledger_kept if len(it.labels) > 1]
    partial = options.single_labels_partial and not curation.labels_look_complete(ledger_kept, pool)
    pairs = curation.label_pairs(reference) if partial else {}

    def unknown(it: CuratedItem) -> frozenset[str]:
        return curation.unanswered(it, pairs) if it.origin == "ledger" else frozenset()

    n_unanswered: Counter[str] = Counter()
    sft_cols = ("key", "category", "prompt", "completion", "origin")
    sft_train = _RowsWriter(out / "data" / "sft-train.parquet", sft_cols)
    for it in train_all:
        skip = unknown(it)
        n_unanswered.update(skip)
        rows = sft_rows(it, policy, read=read, layout=layout, unanswered=skip)
        sft_train.add(rows * (options.hard_repeat if it.hard else 1))
    sft_val = _RowsWriter(out / "data" / "sft-validation.parquet", sft_cols)
    for it in val:
        sft_val.add(sft_rows(it, policy, read=read, layout=layout, unanswered=unknown(it)))
    prefs = _RowsWriter(
        out / "data" / "preference-train.parquet",
        ("key", "category", "prompt", "chosen", "rejected"),
    )
    for it in train:
        prefs.add(preference_rows(it, policy, read=read, layout=layout))
    n_sft_train, n_sft_val, n_prefs = sft_train.close(), sft_val.close(), prefs.close()
    from training.grounding import write_grounding

    n_grounding, grounding_digest = write_grounding(
        session,
        out / "data",
        policy,
        {"train": train_all, "validation": val},
        options.grounding_format,
        read=read,
        resize=options.grounding_resize,
        layout=layout,
    )
    if reader is not None:
        reader.save(out)

    all_items = train_all + val + golden_items
    data_hash = _data_hash(all_items, reader)
    if grounding_digest is not None:  # builds without boxes keep the hash they had
        data_hash = hashlib.sha256((data_hash + grounding_digest).encode()).hexdigest()
    if n_unanswered:  # the same items with fewer answers are other SFT rows
        pairs_json = json.dumps({a: sorted(bs) for a, bs in sorted(pairs.items())})
        data_hash = hashlib.sha256((data_hash + "unanswered:" + pairs_json).encode()).hexdigest()
    if layout != prompts.DEFAULT_LAYOUT:  # the same items in another layout are another dataset
        data_hash = hashlib.sha256((data_hash + "layout:" + layout).encode()).hexdigest()
    counts: dict[str, Any] = {
        "items": {"train": len(train_all), "validation": len(val), "golden": len(golden_items)},
        "sft": {"train": n_sft_train, "validation": n_sft_val},
        "preference": n_prefs,
        # Grounding rows per split, items with boxes, and the box format they answer in.
        "grounding": n_grounding,
        "replay": len(replay),
        # Harmless generated text (origin "benign:...") and, with a reader, harmless text
        # written in the learnt evasion (origin "benign-evasion").
        "negatives": dict(Counter(it.origin.split(":")[0] for it in negatives)),
        "retention": len(retention),  # replay/general rows held out in golden
        # ... per category they carry (a row of two categories counts in both), and harmless.
        "retention_by_category": dict(
            sorted(Counter(c for it in retention for c in it.labels or (SAFE,)).items())
        ),
        "replay_validation": len(val_replay),  # replay/general rows held out in validation
        # Harmless generated rows held out of training (benign_golden / benign_validation).
        "benign_held_out": {"golden": len(held_golden), "validation": len(held_val)},
        "hard": sum(it.hard for it in train),
        # Single-label train items left unanswered per category (items, not SFT rows: a hard
        # item's rows repeat); the pairs that decided it are `label_pairs`.
        "unanswered": dict(sorted(n_unanswered.items())),
        # Share of harmful items with several labels: the corrections' and the replay pool's.
        "multi_label_share": {
            "corrections": curation.multi_label_share(ledger_kept),
            "reference": curation.multi_label_share(pool),
        },
        "label_pairs": {a: sorted(bs) for a, bs in sorted(pairs.items())},
        # Items of several media (posts, videos) per split, and their media.
        **_media_counts({"train": train_all, "validation": val, "golden": golden_items}),
        "classes_train": dict(Counter(it.primary for it in train_all)),
        "curation": {**stats, "ledger_items": n_ledger},
    }
    card = {
        "name": name,
        "data_hash": data_hash,
        "policy_version": policy.version,
        "schema_version": SCHEMA_VERSION,
        # The prompt layout of every SFT, preference and grounding prompt (model.prompts);
        # a card without it was built before layouts existed: "question" (`card_layout`).
        "layout": layout,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "counts": counts,
        "options": {
            k: str(v) if isinstance(v, Path | datetime) else v for k, v in asdict(options).items()
        },
        "golden_keys": sorted(golden),
        "replay_sources": sorted({it.origin for it in replay}),
        "reading": reader.channel.to_json() | {"lexicon_words": len(reader.lexicon)}
        if reader is not None
        else None,
        "reading_evidence": reading_report,
        "labelstudio_kappa": labelstudio_kappa(session),
    }
    (out / "card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    (out / "README.md").write_text(_card_markdown(name, card), encoding="utf-8")
    session.add(DatasetRow(name=name, path=str(out), data_hash=data_hash, counts=counts, card=card))
    session.flush()
    record_audit(
        session,
        actor,
        "dataset.build",
        name=name,
        path=str(out),
        data_hash=data_hash,
        counts=counts["items"],
    )
    return DatasetInfo(name=name, path=str(out), data_hash=data_hash, counts=counts, card=card)


# --- loading for training -------------------------------------------------------------------


def read_card(path: Path) -> dict[str, Any]:
    file = Path(path) / "card.json"
    if not file.is_file():
        raise WardenError(
            f"{path} is not a Warden dataset (no card.json); run `warden dataset build`"
        )
    return json.loads(file.read_text(encoding="utf-8"))


def card_layout(card: dict[str, Any]) -> prompts.PromptLayout:
    """The prompt layout a dataset's prompts are in: its card's "layout", "question" for a
    card built before layouts existed (every prompt then was in that layout)."""
    return prompts.check_layout(str(card.get("layout") or prompts.DEFAULT_LAYOUT))


def row_images(row: dict[str, Any]) -> list[bytes]:
    """The image bytes of an items row, every medium in order: `images` for an item of
    several media, else its one `image` (rows of schema 1 have no `images`)."""
    many = row.get("images") or []
    return [im["bytes"] for im in many] if many else [row["image"]["bytes"]]


def row_input(row: dict[str, Any], read: Callable[[str], str] | None = None) -> ScoringInput:
    """What the scorer sees for an items row (e.g. to score validation during training): every
    medium with its label and OCR text for a post or video, else the one image and its OCR
    text; OCR text passes through `read` (the dataset's reader) as a served model reads it."""
    from PIL import Image

    from model.backends import MediumInput, ScoringInput

    def as_read(text: str | None) -> str:
        return read(text) if read is not None and text else text or ""

    images = [Image.open(io.BytesIO(data)).convert("RGB") for data in row_images(row)]
    media = row.get("media") or []
    return ScoringInput(
        image=images[0],
        text=row.get("text"),
        ocr_text=as_read(row.get("ocr_text")),
        media=tuple(
            MediumInput(image, as_read(m["ocr_text"]), m["label"])
            for image, m in zip(images, media, strict=True)
        )
        if len(media) > 1
        else (),
    )


def load_trl_split(path: Path, config: str = "sft", split: str = "train") -> list[dict[str, Any]]:
    """Rows in TRL's vision format: {images: [PIL], prompt: messages, completion|chosen|rejected}.

    Images come from the items config (stored once per item, not once per question): every
    medium of a post or video in order, as many as the prompt has image placeholders.
    """
    import pyarrow.parquet as pq
    from PIL import Image

    if split == "golden":
        raise WardenError("the golden split is for evaluation only; it is never trained on")
    path = Path(path)
    read_card(path)
    file = path / "data" / f"{config}-{split}.parquet"
    if not file.is_file():
        raise WardenError(f"{path} has no {config}/{split} data")
    rows = pq.read_table(file).to_pylist()
    if not rows or "prompt" not in rows[0]:
        return []
    needed = {r["key"] for r in rows}
    images: dict[str, list[Any]] = {}
    for s in ("train", "validation"):
        f = path / "data" / f"items-{s}.parquet"
        if not f.is_file():
            continue
        parquet = pq.ParquetFile(f)
        columns = ["key", "image"] + (["images"] if "images" in parquet.schema_arrow.names else [])
        # In batches: only the images these rows need are kept, not the whole file's bytes.
        for batch in parquet.iter_batches(batch_size=64, columns=columns):
            for r in batch.to_pylist():
                if r["key"] in needed and r["key"] not in images:
                    images[r["key"]] = [
                        Image.open(io.BytesIO(data)).convert("RGB") for data in row_images(r)
                    ]
    out = []
    for r in rows:
        row = {
            k: json.loads(v) if k in ("prompt", "completion", "chosen", "rejected") else v
            for k, v in r.items()
        }
        row["images"] = list(images[r["key"]])
        out.append(row)
    return out


def load_items(
    path: Path, split: str, columns: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Item rows of one split (image bytes included unless `columns` leaves them out), e.g. to
    evaluate on golden."""
    import pyarrow.parquet as pq

    file = Path(path) / "data" / f"items-{split}.parquet"
    if not file.is_file():
        raise WardenError(f"{path} has no items/{split} data")
    return pq.read_table(file, columns=list(columns) if columns else None).to_pylist()


def export_manifest(path: Path, split: str, out: Path) -> Path:
    """Write a split as images + a JSONL manifest that `warden eval` and `warden ingest` read.

    A single image is one `path` row, as always. A post is one row with `images` (every image
    of the row in order, cover first) and its `text`: ingesting the manifest again gives the
    same post, the same images (by sha256: the views the dataset holds, which ingest keeps
    as they are) in the same order, with the same text and labels. `media_labels` and
    `rendered_texts` carry each image's prompt label and OCR text for `warden eval`, which
    ingest ignores.

    A video exports as the frames the dataset holds, as a post of those frames in order
    (`kind: "video"`, each frame's `timestamps_s`), not as the video file: the blob store
    keeps the original video (the item's blob), but a dataset is read without the ledger or
    its blob store, and a re-ingested video is sampled again under that deployment's limits,
    possibly to other frames than the ones the rows were labelled and trained on. Re-ingested,
    it is a post of the same frames (labelled "Image N" by the scorer, not "Frame N").

    Images are written once per sha256 under `images/` (a post that shares a cover with
    another row shares its file).
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []

    def write(key: str, data: bytes) -> str:
        img = out / "images" / f"{key}.png"
        if not img.is_file():
            img.write_bytes(data)
        return f"images/{img.name}"

    for r in load_items(path, split):
        media = r.get("media") or []
        row: dict[str, Any] = {}
        if len(media) > 1:
            row["images"] = [
                write(m["key"], data) for m, data in zip(media, row_images(r), strict=True)
            ]
        else:
            row["path"] = write(r["key"], r["image"]["bytes"])
        row |= {
            "labels": r["labels"],
            "rendered_text": r["ocr_text"],
            "text": r["text"],
            "variant": r["variant"],
            "family": r["family"],
            "retention": r["origin"] != "ledger",
        }
        if len(media) > 1:
            row["media_labels"] = [m["label"] for m in media]
            row["rendered_texts"] = [m["ocr_text"] for m in media]
            if media[0]["kind"] == "frame":
                row["kind"] = "video"
                row["timestamps_s"] = [m["timestamp_s"] for m in media]
        lines.append(json.dumps(row))
    manifest = out / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


__all__ = [
    "BuildOptions",
    "DatasetInfo",
    "build_dataset",
    "export_manifest",
    "load_items",
    "load_trl_split",
    "read_card",
    "read_ledger",
    "row_images",
    "row_input",
]
