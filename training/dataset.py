"""Build a training dataset from the decision ledger: parquet splits, SFT rows, preference pairs.

The ledger (items, their decisions and predictions) goes through `training.curation`
(conflicts, restricted exclusion, dedup, golden freeze, hard examples, balance, replay, split),
then is written as a Hugging Face dataset on disk:

    DIR/README.md, DIR/card.json                 dataset card: counts, data hash, options
    DIR/data/items-{train,validation,golden}.parquet   one row per image (image bytes embedded)
    DIR/data/sft-{train,validation}.parquet     TRL prompt/completion rows, one per category
    DIR/data/preference-train.parquet           prompt/chosen/rejected where analysts corrected

The build streams: images are read (blob store, replay files) one parquet row group at a
time and SFT/preference rows are written `ROWS_PER_GROUP` at a time; only the curated item
metadata is held whole.

SFT and preference prompts come from `model.prompts.build_messages` with the image's OCR text
(the text the serving backend put in its prompt), so training and serving prompts are the same;
completions are "Yes"/"No", the answers the shared-prefix scorer reads. `load_trl_split` attaches
the images to SFT/preference rows for TRL. The golden split is never trained on, and once an
image is golden it stays golden in every later build (tracked in the `datasets` table). Golden
also holds `golden_fraction` of the replay/general pool (origin "replay:..."): the retention
rows on which the promotion gate checks that nothing old is forgotten (`warden eval --dataset`).

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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from model import prompts
from model.reading import Reader
from storage.audit import record_audit
from storage.errors import Conflict, WardenError
from storage.models import Dataset as DatasetRow
from storage.models import Decision as DecisionRow
from storage.models import Item, Prediction, User
from storage.policy import Policy
from training import curation
from training.curation import CuratedItem, LedgerDecision, LedgerItem, LedgerPrediction

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "golden")


@dataclass(frozen=True)
class BuildOptions:
    replay_ratio: float = 0.3
    since: datetime | None = None
    val_fraction: float = 0.1
    golden_fraction: float = 0.1
    golden_max: int | None = 1000
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
    columns = [c for c in parquet.schema_arrow.names if c != "image"]
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
                )
            )
    return items


def _copy_replay_images(path: Path, keys: set[str], scratch: Path) -> dict[str, Path]:
    """Copy the images of `keys` out of an earlier build's train file into `scratch`, one
    row group at a time; returns key -> file."""
    import pyarrow.parquet as pq

    files: dict[str, Path] = {}
    parquet = pq.ParquetFile(Path(path) / "data" / "items-train.parquet")
    for group in range(parquet.num_row_groups):
        # One row group's keys first: a group holding none of the wanted images is not read.
        group_keys = parquet.read_row_group(group, columns=["key"]).column("key").to_pylist()
        if keys.isdisjoint(group_keys):
            continue
        batches = parquet.iter_batches(batch_size=64, row_groups=[group], columns=["key", "image"])
        for batch in batches:
            for r in batch.to_pylist():
                if r["key"] in keys and r["key"] not in files:
                    files[r["key"]] = scratch / r["key"]
                    files[r["key"]].write_bytes(r["image"]["bytes"])
    return files


def _replay_from_manifest(path: Path, policy: Policy) -> tuple[list[CuratedItem], dict[str, Path]]:
    """Manifest rows as replay items, with key (sha256 of the image) -> image file."""
    from training.evaluate import read_manifest

    items, files = [], {}
    restricted = policy.restricted_ids
    for row in read_manifest(path, policy):
        if restricted.intersection(row.labels):
            continue
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
    """
    from model.normalise import Changes, normalise
    from model.reading import MIN_WORD, lexicon_of
    from training.lexicon import english_words
    from training.substitutions import Evidence, estimate_channel, safe_reader

    observed = [it.ocr_text for it in train if it.ocr_text]
    done = Changes()
    for text in observed:
        done.add(normalise(text)[1])
    report: dict[str, Any] = {"normalisation": done.to_json(), "swaps": None}
    reference = [it.ocr_text for it in pool if it.ocr_text]
    if not reference:
        return None, report
    evidence = Evidence()
    channel = estimate_channel(observed, reference, evidence=evidence)
    report["swaps"] = evidence.to_json()
    if channel.empty:
        return None, report
    lexicon = lexicon_of(reference)
    for word in english_words(min_len=MIN_WORD):  # lower-case ASCII letters: plain words
        lexicon.setdefault(word, 1)
    reader = safe_reader(channel, lexicon, reference, evidence)
    report["swaps"] = evidence.to_json()
    if reader is None:
        log.info("character swaps refused: they change plain replay words")
        return None, report
    log.info("corrections show character swaps: %s", reader.channel.summary(8))
    return reader, report


def _latest_dataset_path(session: Session) -> Path | None:
    for row in session.scalars(select(DatasetRow).order_by(DatasetRow.created_at.desc())):
        if (Path(row.path) / "data" / "items-train.parquet").is_file():
            return Path(row.path)
    return None


# --- TRL rows -------------------------------------------------------------------------------


def _ocr_as_read(item: CuratedItem, read: Callable[[str], str] | None) -> str:
    return read(item.ocr_text) if read is not None and item.ocr_text else item.ocr_text


def sft_rows(
    item: CuratedItem, policy: Policy, *, read: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """One prompt/completion row per policy category (the scorer asks each question); the OCR
    hint passes through `read` (the dataset's reader) as it will at serving time."""
    ocr_text = _ocr_as_read(item, read)
    rows = []
    for cat in policy.categories:
        question = prompts.category_question(cat)
        rows.append(
            {
                "key": item.key,
                "category": cat.id,
                "prompt": prompts.build_messages(
                    policy, text=item.text, ocr_text=ocr_text, question=question
                ),
                "completion": prompts.answer_messages(prompts.yes_no(cat.id in item.labels)),
                "origin": item.origin,
            }
        )
    return rows


def preference_rows(
    item: CuratedItem, policy: Policy, *, read: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """Where the analyst's answer differs from the model's: chosen = analyst, rejected = model."""
    if item.model_flagged is None:
        return []
    ocr_text = _ocr_as_read(item, read)
    rows = []
    for cat in policy.categories:
        truth, model_said = cat.id in item.labels, cat.id in item.model_flagged
        if truth == model_said:
            continue
        rows.append(
            {
                "key": item.key,
                "category": cat.id,
                "prompt": prompts.build_messages(
                    policy,
                    text=item.text,
                    ocr_text=ocr_text,
                    question=prompts.category_question(cat),
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


def _item_features() -> Any:
    import datasets

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
        }
    )


def _item_columns(items: Sequence[CuratedItem], image: Callable[[str], bytes]) -> dict[str, list]:
    cols: dict[str, list[Any]] = {k: [] for k in _ITEM_COLUMNS}
    for it in items:
        d = asdict(it)
        for k in _ITEM_COLUMNS:
            if k == "image":
                cols[k].append({"bytes": image(it.key), "path": None})
            elif k in ("labels", "model_flagged"):
                cols[k].append(list(d[k]) if d[k] is not None else None)
            else:
                cols[k].append(d[k])
    return cols


def _write_items(path: Path, items: Sequence[CuratedItem], image: Callable[[str], bytes]) -> None:
    """One row per image, written the way `datasets.Dataset.to_parquet` writes the whole split
    (same schema, options and row groups, so the same bytes), holding one row group at a time.

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

    features = _item_features()
    image_bytes = 0

    def no_image(key: str) -> bytes:
        nonlocal image_bytes
        image_bytes += len(image(key))
        return b""

    skeleton = datasets.Dataset.from_dict(_item_columns(items, no_image), features=features)
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
            cols = _item_columns(items[start : start + batch_size], image)
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
    """Over the items and, when there is one, the reader their prompts were read through."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda i: (i.split, i.key)):
        h.update(json.dumps([it.split, it.key, list(it.labels), it.ocr_text, it.origin]).encode())
    if reader is not None:
        h.update(json.dumps(reader.to_json(), sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def _card_markdown(name: str, card: dict[str, Any]) -> str:
    configs = [
        ("items", [(s, f"data/items-{s}.parquet") for s in SPLITS]),
        ("sft", [(s, f"data/sft-{s}.parquet") for s in ("train", "validation")]),
        ("preference", [("train", "data/preference-train.parquet")]),
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
        f"Built {card['built_at']}.",
        "",
        "| split | images | SFT rows |",
        "|---|---|---|",
    ]
    for s in SPLITS:
        body.append(f"| {s} | {counts['items'].get(s, 0)} | {counts['sft'].get(s, '-')} |")
    body += [
        "",
        f"Preference pairs (analyst corrected the model): {counts['preference']}.",
        f"Replay rows in train: {counts['replay']} (ratio {card['options']['replay_ratio']}).",
        f"Hard examples in train: {counts['hard']}. Curation: {json.dumps(counts['curation'])}.",
        f"Class counts in train: {json.dumps(counts['classes_train'])}.",
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
    recent = {li.key for li in ledger if _is_since(li, options.since)}
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
    golden_items = [it for it in kept if it.key in golden]
    # A near-duplicate of a golden image must not be trained on either.
    rest = [it for it in kept if it.key not in golden and it.key in recent]
    rest, n_balanced = curation.balance(rest, cap_factor=options.balance_cap, seed=options.seed)
    stats["balanced_out"] = n_balanced
    val_keys = curation.stratified_pick(rest, options.val_fraction, options.seed, "validation")
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
    retention = [it for it in held if it.key in retention_keys]
    golden_items += retention
    golden = golden | retention_keys
    # Earlier data (older than --since) may come back as replay; golden never, and an
    # image already in this build's train/validation is not repeated.
    exclude = golden | {it.key for it in rest} | set(dropped)
    replay = curation.sample_replay(pool, n_replay, exclude=exclude, seed=options.seed)
    reader, reading_report = (
        _learn_reading(train, pool) if options.learn_reading else (None, None)
    )
    read = reader.read if reader is not None else None

    train_all = curation.with_split(train + replay, "train")
    val = curation.with_split(val, "validation")
    golden_items = curation.with_split(golden_items, "golden")

    (out / "data").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".replay-", dir=out) as scratch:
        from_dataset = {it.key for it in replay + retention} - set(image_files)
        if src is not None and from_dataset:
            image_files.update(_copy_replay_images(src, from_dataset, Path(scratch)))

        def image(key: str) -> bytes:
            file = image_files.get(key)
            return file.read_bytes() if file is not None else read_image(key)

        for split, rows in (("train", train_all), ("validation", val), ("golden", golden_items)):
            _write_items(out / "data" / f"items-{split}.parquet", rows, image)
    sft_cols = ("key", "category", "prompt", "completion", "origin")
    sft_train = _RowsWriter(out / "data" / "sft-train.parquet", sft_cols)
    for it in train_all:
        sft_train.add(sft_rows(it, policy, read=read) * (options.hard_repeat if it.hard else 1))
    sft_val = _RowsWriter(out / "data" / "sft-validation.parquet", sft_cols)
    for it in val:
        sft_val.add(sft_rows(it, policy, read=read))
    prefs = _RowsWriter(
        out / "data" / "preference-train.parquet",
        ("key", "category", "prompt", "chosen", "rejected"),
    )
    for it in train:
        prefs.add(preference_rows(it, policy, read=read))
    n_sft_train, n_sft_val, n_prefs = sft_train.close(), sft_val.close(), prefs.close()
    if reader is not None:
        reader.save(out)

    all_items = train_all + val + golden_items
    data_hash = _data_hash(all_items, reader)
    counts: dict[str, Any] = {
        "items": {"train": len(train_all), "validation": len(val), "golden": len(golden_items)},
        "sft": {"train": n_sft_train, "validation": n_sft_val},
        "preference": n_prefs,
        "replay": len(replay),
        "retention": len(retention),  # replay/general rows held out in golden
        "hard": sum(it.hard for it in train),
        "classes_train": dict(Counter(it.primary for it in train_all)),
        "curation": {**stats, "ledger_items": n_ledger},
    }
    card = {
        "name": name,
        "data_hash": data_hash,
        "policy_version": policy.version,
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


def load_trl_split(path: Path, config: str = "sft", split: str = "train") -> list[dict[str, Any]]:
    """Rows in TRL's vision format: {images: [PIL], prompt: messages, completion|chosen|rejected}.

    Images come from the items config (stored once per image, not once per question).
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
    images: dict[str, Any] = {}
    for s in ("train", "validation"):
        f = path / "data" / f"items-{s}.parquet"
        if not f.is_file():
            continue
        # In batches: only the images these rows need are kept, not the whole file's bytes.
        for batch in pq.ParquetFile(f).iter_batches(batch_size=256, columns=["key", "image"]):
            for r in batch.to_pylist():
                if r["key"] in needed and r["key"] not in images:
                    images[r["key"]] = Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB")
    out = []
    for r in rows:
        row = {
            k: json.loads(v) if k in ("prompt", "completion", "chosen", "rejected") else v
            for k, v in r.items()
        }
        row["images"] = [images[r["key"]]]
        out.append(row)
    return out


def load_items(path: Path, split: str) -> list[dict[str, Any]]:
    """Item rows of one split (image bytes included), e.g. to evaluate on golden."""
    import pyarrow.parquet as pq

    file = Path(path) / "data" / f"items-{split}.parquet"
    if not file.is_file():
        raise WardenError(f"{path} has no items/{split} data")
    return pq.read_table(file).to_pylist()


def export_manifest(path: Path, split: str, out: Path) -> Path:
    """Write a split as images + a JSONL manifest that `warden eval` reads."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for r in load_items(path, split):
        img = out / "images" / f"{r['key']}.png"
        img.write_bytes(r["image"]["bytes"])
        lines.append(
            json.dumps(
                {
                    "path": f"images/{img.name}",
                    "labels": r["labels"],
                    "rendered_text": r["ocr_text"],
                    "text": r["text"],
                    "variant": r["variant"],
                    "family": r["family"],
                    "retention": r["origin"] != "ledger",
                }
            )
        )
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
]
