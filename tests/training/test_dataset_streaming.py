"""`warden dataset build` streams images and rows: same data hash and rows as before the
streaming rewrite, files byte-identical to what the whole-table writers produce, and never
every image in memory at once. Real SQLite and PostgreSQL ledgers, real blob store."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import training.dataset as dataset_module
from storage.blobs import BlobStore
from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.settings import Settings
from storage.users import create_user
from tests.training.test_dataset import POLICY, _ingest, _item_ids, _predict
from training.dataset import BuildOptions, DatasetInfo, build_dataset
from training.synth import make_specs, render_sample

ITEM_SPLITS = ("train", "validation", "golden")
ROW_FILES = ("sft-train", "sft-validation", "preference-train")

# Pinned from the whole-in-memory build (commit 2632a3a) over `_ledger_and_builds`: the same
# ledger must keep giving the same data hash and the same rows. Re-pinned once (issue 15): build
# 2 now holds 3 replay rows out of training into golden as the gate's retention rows. The
# harmless generated negatives (issue 18, tests/training/test_dataset_negatives.py) and the
# replay rows held out into validation (test_validation_holds_replay_rows_...) are off here.
PINNED_HASH = "dd1ee93c5919f6d6868cf7d1e5ec6de9974175c430d188cd7510e85209eda572"
PINNED_ROWS = "fa5d902235c5d431a355625886696c81cfe269ceacb4589a1851baad2fbf518f"


def _manifest(folder: Path, n: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    lines = []
    for spec in make_specs(n, seed, variants=["clean"], size=96):
        image, rec = render_sample(spec)
        image.save(folder / f"{spec.index}.png")
        lines.append(
            json.dumps(
                {
                    "path": f"{spec.index}.png",
                    "labels": rec["labels"],
                    "rendered_text": rec["rendered_text"],
                }
            )
        )
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "m.jsonl"


def _ledger_and_builds(settings: Settings, tmp: Path, read_image=None) -> tuple[Path, DatasetInfo]:
    """Build 1 over one ingest; build 2 over a later ingest with replay from build 1 and from a
    manifest, so images come from all three sources (blob store, dataset, manifest files)."""
    store = BlobStore(settings.blobs_path)
    read = read_image or store.read_bytes
    rows = _ingest(settings, tmp / "in1", 24, seed=3)
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(engine) as s:
            create_user(s, "mo", "correct horse battery", "moderator")
            ids = _item_ids(s)
            for i, name in enumerate(sorted(ids)):
                labels = rows[name]["labels"]
                _predict(s, ids[name], labels if i % 5 else [], rows[name]["rendered_text"])
            # An analyst correction (a preference pair) and an unsure score (a hard example).
            first = sorted(ids)[0]
            record_decision(
                s, item_id=ids[first], categories=["weapons"], source="moderator",
                reviewer="mo", policy=POLICY,
            )  # fmt: skip
        with unit_of_work(engine) as s:
            build_dataset(
                s, tmp / "ds1", POLICY, read_image=read,
                options=BuildOptions(
                    golden_fraction=0.2, replay_ratio=0.0, balance_cap=0, benign_share=0.0,
                    replay_val_fraction=0.0,
                ),
            )  # fmt: skip
        since = datetime.now(UTC)
        _ingest(settings, tmp / "in2", 24, seed=4)
        manifest = _manifest(tmp / "synth", 8, seed=5)
        with unit_of_work(engine) as s:
            info = build_dataset(
                s, tmp / "ds2", POLICY, read_image=read,
                options=BuildOptions(
                    golden_fraction=0.2, replay_ratio=0.4, balance_cap=0, seed=1, since=since,
                    replay_from=tmp / "ds1", replay_manifest=manifest, benign_share=0.0,
                    replay_val_fraction=0.0,
                ),
            )  # fmt: skip
    finally:
        engine.dispose()
    return tmp / "ds2", info


def _rows_digest(out: Path) -> str:
    """Every row of every file (image bytes by their sha256; item ids left out: they are the
    database's), in file order."""
    h = hashlib.sha256()
    for split in ITEM_SPLITS:
        for r in pq.read_table(out / "data" / f"items-{split}.parquet").to_pylist():
            r["image"] = hashlib.sha256(r["image"]["bytes"]).hexdigest()
            r.pop("item_id")
            h.update(json.dumps([split, r], sort_keys=True).encode())
    for name in ROW_FILES:
        for r in pq.read_table(out / "data" / f"{name}.parquet").to_pylist():
            h.update(json.dumps([name, r], sort_keys=True).encode())
    return h.hexdigest()


def _reference_files(out: Path, ref: Path, rows_per_group: int | None = None) -> None:
    """The same rows written the whole-table way: `datasets` for the item files (as the build
    always did), one `pq.write_table` for the SFT and preference files."""
    ref.mkdir()
    for split in ITEM_SPLITS:
        file = out / "data" / f"items-{split}.parquet"
        features = datasets.Features.from_arrow_schema(pq.read_schema(file))
        columns = pq.read_table(file).to_pydict()
        datasets.Dataset.from_dict(columns, features=features).to_parquet(
            str(ref / f"items-{split}.parquet")
        )
    for name in ROW_FILES:
        rows = pq.read_table(out / "data" / f"{name}.parquet").to_pylist()
        table = pa.Table.from_pylist(rows) if rows else pa.table({"key": pa.array([], pa.string())})
        pq.write_table(table, ref / f"{name}.parquet", row_group_size=rows_per_group)


def _assert_same_bytes(out: Path, ref: Path) -> None:
    for name in [f"items-{s}" for s in ITEM_SPLITS] + list(ROW_FILES):
        got = (out / "data" / f"{name}.parquet").read_bytes()
        assert got == (ref / f"{name}.parquet").read_bytes(), name


def test_build_keeps_its_hash_rows_and_bytes(settings: Settings, tmp_path: Path) -> None:
    out, info = _ledger_and_builds(settings, tmp_path)
    train = pq.read_table(out / "data" / "items-train.parquet").to_pylist()
    origins = {r["origin"] for r in train}
    assert {"ledger", "replay:ds1", "replay:synth"} <= origins, origins
    assert (info.data_hash, _rows_digest(out)) == (PINNED_HASH, PINNED_ROWS)
    assert json.loads((out / "card.json").read_text())["data_hash"] == PINNED_HASH
    _reference_files(out, tmp_path / "ref")
    _assert_same_bytes(out, tmp_path / "ref")


class _Image(bytes):
    """Image bytes that count how many of them are alive at once."""

    live = 0
    peak = 0

    def __new__(cls, data: bytes) -> _Image:
        obj = super().__new__(cls, data)
        cls.live += 1
        cls.peak = max(cls.peak, cls.live)
        return obj

    def __del__(self) -> None:
        type(self).live -= 1


def test_build_holds_one_row_group_of_images(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Row groups of ~12 KB (a 96 px SynthMod PNG is several KB) and of 7 SFT rows: files span
    # many row groups, and the build may hold one group's images, never all of them.
    monkeypatch.setattr(datasets.config, "MAX_ROW_GROUP_SIZE", "12KB")
    monkeypatch.setattr(dataset_module, "ROWS_PER_GROUP", 7, raising=False)
    store = BlobStore(sqlite_settings.blobs_path)
    _Image.live = _Image.peak = 0

    def read(key: str) -> Any:
        return _Image(store.read_bytes(key))

    out, info = _ledger_and_builds(sqlite_settings, tmp_path, read_image=read)
    n_images = sum(
        pq.read_metadata(out / "data" / f"items-{s}.parquet").num_rows for s in ITEM_SPLITS
    )
    groups = pq.read_metadata(out / "data" / "items-train.parquet").num_row_groups
    assert n_images >= 30 and groups > 5, (n_images, groups)
    assert _Image.peak <= 6, f"{_Image.peak} images held at once out of {n_images}"
    assert info.data_hash == PINNED_HASH
    assert _rows_digest(out) == PINNED_ROWS
    _reference_files(out, tmp_path / "ref", rows_per_group=7)
    _assert_same_bytes(out, tmp_path / "ref")
    assert pq.read_metadata(out / "data" / "sft-train.parquet").num_row_groups > 5
