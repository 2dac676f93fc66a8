"""Dataset build from the real ledger on SQLite and PostgreSQL: conflicts, restricted
exclusion, dedup, hard examples, preference pairs, golden freeze across builds, replay share."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from PIL import Image
from sqlalchemy import select

from storage.blobs import BlobStore
from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.domain import Verdict
from storage.ingest import ingest_paths
from storage.models import Dataset, Item
from storage.policy import load_policy
from storage.queue import record_prediction
from storage.settings import DEFAULT_POLICY, Settings
from storage.users import create_user
from training.dataset import BuildOptions, DatasetInfo, build_dataset, load_trl_split
from training.synth import make_specs, render_sample

POLICY = load_policy(DEFAULT_POLICY)


def _scores(flagged: list[str], unsure: str | None = None) -> dict[str, float]:
    s = {c: (0.9 if c in flagged else 0.05) for c in POLICY.ids}
    if unsure:
        s[unsure] = 0.52
    return s


def _predict(s, item_id: int, flagged: list[str], ocr: str, unsure: str | None = None) -> None:
    scores = _scores(flagged, unsure)
    record_prediction(
        s,
        item_id,
        Verdict(
            scores=scores,
            flagged=POLICY.flagged(scores),
            model_version="m0",
            policy_version=POLICY.version,
            latency_ms=1.0,
            ocr_text=ocr,
        ),
    )


def _ingest(settings: Settings, folder: Path, n: int, seed: int) -> dict[str, dict]:
    """n SynthMod images ingested with their labels (import decisions); returns rows by path."""
    folder.mkdir(parents=True)
    rows = {}
    lines = []
    for spec in make_specs(n, seed, variants=["clean"], size=96):
        image, rec = render_sample(spec)
        name = f"{seed}-{spec.index}.png"
        image.save(folder / name)
        rows[name] = rec
        lines.append(json.dumps({"path": name, "labels": rec["labels"] or ["safe"]}))
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    engine = make_engine(settings.database_url)
    report = ingest_paths(engine, settings, [folder / "m.jsonl"], source="synth", policy=POLICY)
    engine.dispose()
    assert all(r.status in ("accepted", "near_duplicate") for r in report.results), report
    return rows


def small_corrected_dataset(
    settings: Settings, tmp_path: Path, n: int, seed: int, options: BuildOptions
) -> Path:
    """A dataset built from a real ledger of `n` SynthMod items that a model `m0` flagged
    nothing on (so every violating item is a correction); returns its folder."""
    rows = _ingest(settings, tmp_path / "in", n, seed=seed)
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as s:
        for item in s.scalars(select(Item)):
            _predict(s, item.id, [], rows[item.filename.rsplit("/", 1)[-1]]["rendered_text"])
    out = tmp_path / "ds"
    with unit_of_work(engine) as s:
        build_dataset(
            s, out, POLICY, read_image=BlobStore(settings.blobs_path).read_bytes, options=options
        )
    engine.dispose()
    return out


def _item_ids(s) -> dict[str, int]:
    return {it.filename.rsplit("/", 1)[-1]: it.id for it in s.scalars(select(Item))}


def _build(settings: Settings, out: Path, **options: Any) -> DatasetInfo:
    """`build_dataset` over the ledger of `settings` with these BuildOptions."""
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(engine) as s:
            return build_dataset(
                s,
                out,
                POLICY,
                read_image=BlobStore(settings.blobs_path).read_bytes,
                options=BuildOptions(**options),
            )
    finally:
        engine.dispose()


@contextmanager
def training_cli(settings: Settings, monkeypatch: Any) -> Iterator[Callable[[list[str]], Any]]:
    """`warden`'s training commands (dataset, train, retrain, eval...) on the database and data
    folder of `settings`: yields `invoke(args)` -> the CliRunner result."""
    import typer
    from typer.testing import CliRunner

    from storage.settings import get_settings
    from training import cli

    monkeypatch.setenv("WARDEN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("WARDEN_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    app = typer.Typer()
    cli.register(app)
    try:
        yield lambda args: CliRunner().invoke(app, args)
    finally:
        get_settings.cache_clear()


def _items(path: Path, split: str) -> list[dict]:
    return pq.read_table(path / "data" / f"items-{split}.parquet").to_pylist()


def test_build_curates_the_ledger(settings: Settings, tmp_path: Path) -> None:
    rows = _ingest(settings, tmp_path / "in", 40, seed=3)
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as s:
        create_user(s, "mo", "correct horse battery", "moderator")
        create_user(s, "ad", "correct horse battery", "admin")
        ids = _item_ids(s)
        names = sorted(ids)
        by_label = {n: rows[n]["labels"] for n in names}
        text = {n: rows[n]["rendered_text"] for n in names}
        for n in names:
            _predict(s, ids[n], by_label[n], text[n])
        # Conflict: import label, then an annotator, then a moderator; the moderator wins
        # although the annotator came last? No: the annotator writes last, role still loses.
        conflict = names[0]
        record_decision(
            s,
            item_id=ids[conflict],
            categories=["weapons"],
            source="moderator",
            reviewer="mo",
            policy=POLICY,
        )
        record_decision(
            s,
            item_id=ids[conflict],
            categories=["drugs"],
            source="label_studio",
            reviewer="ls-annotator-7",
            policy=POLICY,
            external_ref="ls:1:1",
        )
        # Restricted by decision, and by a prediction over threshold.
        restricted_dec, restricted_pred = names[1], names[2]
        record_decision(
            s,
            item_id=ids[restricted_dec],
            categories=["child_safety"],
            source="moderator",
            reviewer="ad",
            policy=POLICY,
        )
        _scores_cs = _scores([])
        _scores_cs["child_safety"] = 0.8
        record_prediction(
            s,
            ids[restricted_pred],
            Verdict(
                scores=_scores_cs,
                flagged=["child_safety"],
                model_version="m1",
                policy_version=POLICY.version,
                latency_ms=1.0,
                ocr_text=text[restricted_pred],
            ),
        )
        # The model was wrong: analyst says scam_fraud where it flagged nothing -> a pair.
        corrected = next(n for n in names[3:] if not by_label[n])
        _predict(s, ids[corrected], [], text[corrected])  # same model version: no new row
        record_decision(
            s,
            item_id=ids[corrected],
            categories=["scam_fraud"],
            source="moderator",
            reviewer="mo",
            policy=POLICY,
        )
        # Retracted decision: the import label stays, the retracted moderator one is gone.
        retracted = names[4]
        d = record_decision(
            s,
            item_id=ids[retracted],
            categories=["harassment"],
            source="moderator",
            reviewer="mo",
            policy=POLICY,
        )
        from storage.decisions import undo_last_decision

        assert undo_last_decision(s, "mo").supersedes_id == d.id

    store = BlobStore(settings.blobs_path)
    out1 = tmp_path / "ds1"
    info = _build(
        settings, out1, golden_fraction=0.2, val_fraction=0.1, replay_ratio=0.0, balance_cap=0
    )
    all_rows = {
        r["item_id"]: r for sp in ("train", "validation", "golden") for r in _items(out1, sp)
    }
    # Restricted items are gone entirely, and no restricted label appears anywhere.
    assert ids[restricted_dec] not in all_rows and ids[restricted_pred] not in all_rows
    assert not any("child_safety" in r["labels"] for r in all_rows.values())
    assert info.counts["curation"]["excluded_restricted"] == 2
    # Role beats recency: the moderator's weapons beats the later Label Studio annotator.
    assert all_rows[ids[conflict]]["labels"] == ["weapons"]
    assert all_rows[ids[conflict]]["conflict"] is True
    assert all_rows[ids[corrected]]["labels"] == ["scam_fraud"]
    assert all_rows[ids[corrected]]["hard"] is True
    assert all_rows[ids[retracted]]["labels"] == by_label[retracted]
    # Images are embedded and decode.
    img = Image.open(io.BytesIO(next(iter(all_rows.values()))["image"]["bytes"]))
    assert img.size[0] > 0
    # SFT rows: one per category, prompts with the OCR hint, completions Yes/No.
    sft = load_trl_split(out1, "sft", "train")
    train_keys = {r["key"] for r in _items(out1, "train")}
    assert {r["key"] for r in sft} == train_keys
    one = [r for r in sft if r["key"] == all_rows[ids[names[5]]]["key"]] or sft[:11]
    assert len({r["category"] for r in one}) == len(POLICY.ids)
    user_text = one[0]["prompt"][1]["content"][1]["text"]
    assert 'OCR: "' in user_text
    assert {r["completion"][0]["content"][0]["text"] for r in sft} == {"Yes", "No"}
    # Preference pair from the correction, if the corrected item landed in train.
    prefs = load_trl_split(out1, "preference", "train")
    if all_rows[ids[corrected]]["split"] == "train":
        pair = [
            p
            for p in prefs
            if p["key"] == all_rows[ids[corrected]]["key"] and p["category"] == "scam_fraud"
        ]
        assert pair and pair[0]["chosen"][0]["content"][0]["text"] == "Yes"
        assert pair[0]["rejected"][0]["content"][0]["text"] == "No"
    # Golden never trained on.
    golden1 = {r["key"] for r in _items(out1, "golden")}
    assert golden1 and not golden1 & train_keys
    with pytest.raises(Exception, match="golden"):
        load_trl_split(out1, "sft", "golden")
    card = json.loads((out1 / "card.json").read_text())
    assert card["data_hash"] == info.data_hash and "configs:" in (out1 / "README.md").read_text()

    # Second build over newer data only: golden stays golden, replay comes from build 1.
    from datetime import UTC, datetime

    since = datetime.now(UTC)
    _ingest(settings, tmp_path / "in2", 30, seed=4)
    out2 = tmp_path / "ds2"
    with unit_of_work(engine) as s:
        info2 = build_dataset(
            s,
            out2,
            POLICY,
            read_image=store.read_bytes,
            options=BuildOptions(
                golden_fraction=0.2, replay_ratio=0.3, balance_cap=0, seed=1, since=since
            ),
        )
        assert s.scalars(select(Dataset)).all()[-1].data_hash == info2.data_hash
    golden2 = {r["key"] for r in _items(out2, "golden")}
    train2 = _items(out2, "train")
    assert golden1 <= golden2
    assert not golden2 & {r["key"] for r in train2}
    replay = [r for r in train2 if r["origin"].startswith("replay:")]
    assert replay and all(r["origin"] == "replay:ds1" for r in replay)
    share = len(replay) / len(train2)
    assert 0.2 <= share <= 0.4, share
    engine.dispose()


def test_dedup_near_identical_images(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "dup"
    folder.mkdir()
    spec = make_specs(1, 9, variants=["clean"], size=128)[0]
    image, rec = render_sample(spec)
    image.save(folder / "a.png")
    image.save(folder / "b.jpg", quality=95)  # other bytes, same picture
    lines = [
        json.dumps({"path": p, "labels": rec["labels"] or ["safe"]}) for p in ("a.png", "b.jpg")
    ]
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    engine = make_engine(settings.database_url)
    ingest_paths(engine, settings, [folder / "m.jsonl"], source="t", policy=POLICY)
    with unit_of_work(engine) as s:
        for item in s.scalars(select(Item)):
            _predict(s, item.id, list(rec["labels"]), rec["rendered_text"])
        n_items = len(s.scalars(select(Item)).all())
    assert n_items == 2
    with unit_of_work(engine) as s:
        info = build_dataset(
            s,
            tmp_path / "d",
            POLICY,
            read_image=BlobStore(settings.blobs_path).read_bytes,
            options=BuildOptions(golden_fraction=0, val_fraction=0, replay_ratio=0),
        )
    assert info.counts["curation"]["duplicates_dropped"] == 1
    assert info.counts["items"]["train"] == 1
    engine.dispose()
