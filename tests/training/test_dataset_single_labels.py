"""Single-label decisions in `warden dataset build` (issue 18): a source that names one category
per item (the primary violation) says nothing about the categories the policy labels with it.
A drug sale ad labelled "drugs" must not be trained "No" on illegal_ads, or the turn forgets
illegal ads it caught; a "No" the analyst gave by removing the model's flag still counts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image, ImageDraw
from sqlalchemy import select

from storage.db import make_engine, unit_of_work
from storage.ingest import ingest_paths
from storage.models import Item
from storage.settings import Settings
from tests.training.test_dataset import POLICY, _build, _ingest, _predict, training_cli
from training.curation import CuratedItem, label_pairs, unanswered
from training.dataset import load_trl_split


def _item(key: str, labels: tuple[str, ...], flagged: tuple[str, ...] | None = None):
    return CuratedItem(key=key, item_id=None, labels=labels, ocr_text="", text=None,
                       model_flagged=flagged)  # fmt: skip


def test_label_pairs_are_the_co_labels_of_enough_items() -> None:
    ref = [_item(f"a{i}", ("drugs", "illegal_ads")) for i in range(6)]
    ref += [_item(f"b{i}", ("drugs",)) for i in range(24)]  # P(illegal_ads | drugs) = 0.2
    ref += [_item(f"c{i}", ("harassment", "hate_extremism")) for i in range(3)]
    ref += [_item(f"d{i}", ("harassment",)) for i in range(97)]  # 0.03 < 0.05
    ref += [_item(f"e{i}", ()) for i in range(50)]
    pairs = label_pairs(ref)
    assert pairs["drugs"] == {"illegal_ads"}
    # illegal_ads is seen 6 times only: too few to say what it pairs with.
    assert "illegal_ads" not in pairs
    assert "harassment" not in pairs
    assert pairs == label_pairs(ref, min_rate=0.05, min_support=20)
    assert label_pairs(ref, min_support=5)["illegal_ads"] == {"drugs"}


def test_only_a_single_label_leaves_its_pairs_unanswered() -> None:
    pairs = {"drugs": frozenset({"illegal_ads", "scam_fraud"})}
    assert unanswered(_item("k", ("drugs",)), pairs) == {"illegal_ads", "scam_fraud"}
    assert unanswered(_item("k", ("drugs",), flagged=()), pairs) == {"illegal_ads", "scam_fraud"}
    # The analyst removed the model's illegal_ads flag: an explicit "No".
    assert unanswered(_item("k", ("drugs",), flagged=("illegal_ads",)), pairs) == {"scam_fraud"}
    # The model caught drugs and not illegal_ads: its silence is no answer either.
    assert unanswered(_item("k", ("drugs",), flagged=("drugs",)), pairs) == {
        "illegal_ads",
        "scam_fraud",
    }
    # Several labels: the analyst labelled every category; none: harmless, all "No".
    assert unanswered(_item("k", ("drugs", "self_harm")), pairs) == frozenset()
    assert unanswered(_item("k", ()), pairs) == frozenset()
    assert unanswered(_item("k", ("harassment",)), pairs) == frozenset()


def _image(path: Path, text: str) -> None:
    im = Image.new("RGB", (160, 64), "white")
    ImageDraw.Draw(im).text((4, 24), text, fill="black")
    im.save(path)


def _replay(folder: Path) -> Path:
    """A policy-labelled replay manifest where drug ads are drugs + illegal_ads."""
    (folder / "images").mkdir(parents=True)
    lines = []
    for i in range(60):
        labels = ["drugs", "illegal_ads"] if i % 2 else ["drugs"]
        if i >= 40:
            labels = []
        text = f"replay {i} {'-'.join(labels) or 'harmless'}"
        _image(folder / "images" / f"{i}.png", text)
        lines.append(
            json.dumps({"path": f"images/{i}.png", "labels": labels, "rendered_text": text})
        )
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "manifest.jsonl"


def test_build_trains_no_unknown_answer(settings: Settings, tmp_path: Path) -> None:
    replay = _replay(tmp_path / "replay")
    corr = tmp_path / "corr"
    corr.mkdir()
    # name -> (labels, the live model's flags)
    plan = {f"single-{i}": (["drugs"], []) for i in range(12)}
    plan |= {f"removed-{i}": (["drugs"], ["illegal_ads"]) for i in range(4)}
    plan |= {f"caught-{i}": (["drugs"], ["drugs"]) for i in range(4)}
    plan |= {f"both-{i}": (["drugs", "illegal_ads"], []) for i in range(4)}
    plan |= {f"safe-{i}": (["safe"], ["illegal_ads"]) for i in range(8)}
    lines = []
    for name, (labels, _flags) in plan.items():
        _image(corr / f"{name}.png", f"correction {name}")
        lines.append(json.dumps({"path": f"{name}.png", "labels": labels}))
    (corr / "m.jsonl").write_text("\n".join(lines) + "\n")
    engine = make_engine(settings.database_url)
    ingest_paths(engine, settings, [corr / "m.jsonl"], source="loop", policy=POLICY)
    with unit_of_work(engine) as s:
        for item in s.scalars(select(Item)):
            name = item.filename.rsplit("/", 1)[-1].removesuffix(".png")
            _predict(s, item.id, plan[name][1], f"correction {name}")
    engine.dispose()

    out = tmp_path / "ds"
    opts = dict(replay_ratio=0.3, replay_manifest=replay, golden_fraction=0.1, val_fraction=0.0)
    info = _build(settings, out, **opts, learn_reading=False, benign_share=0.0)
    assert info.counts["label_pairs"]["drugs"] == ["illegal_ads"]
    train = [r for r in load_trl_split(out, "sft", "train") if r["origin"] == "ledger"]
    answers: dict[str, dict[str, str]] = {}
    for r in train:
        answers.setdefault(r["key"], {})[r["category"]] = r["completion"][0]["content"][0]["text"]
    by_kind: dict[str, list[dict[str, str]]] = {}
    items = pq.read_table(out / "data" / "items-train.parquet").to_pylist()
    kind = {r["key"]: r["item_id"] for r in items if r["origin"] == "ledger"}
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as s:
        filename = {it.id: it.filename.rsplit("/", 1)[-1] for it in s.scalars(select(Item))}
    engine.dispose()
    for key, item_id in kind.items():
        by_kind.setdefault(filename[item_id].split("-")[0], []).append(answers[key])
    assert set(by_kind) == {"single", "removed", "caught", "both", "safe"}
    n_categories = len(POLICY.categories)
    for a in by_kind["single"]:  # illegal_ads unknown: no row; every other category answered
        assert "illegal_ads" not in a and len(a) == n_categories - 1 and a["drugs"] == "Yes"
        assert a["scam_fraud"] == "No"
    for a in by_kind["removed"]:  # the analyst took the model's illegal_ads flag off
        assert a["illegal_ads"] == "No" and len(a) == n_categories
    for a in by_kind["caught"]:  # the model's silence on illegal_ads is no answer
        assert "illegal_ads" not in a and a["drugs"] == "Yes" and len(a) == n_categories - 1
    for a in by_kind["both"]:
        assert a["illegal_ads"] == a["drugs"] == "Yes" and len(a) == n_categories
    for a in by_kind["safe"]:
        assert set(a.values()) == {"No"} and len(a) == n_categories
    n_unknown = len(by_kind["single"]) + len(by_kind["caught"])
    assert info.counts["unanswered"] == {"illegal_ads": n_unknown}
    assert "unanswered" in (out / "README.md").read_text()
    # Replay rows keep every answer: the policy's own labels are complete.
    replay_rows = [r for r in load_trl_split(out, "sft", "train") if r["origin"] != "ledger"]
    per_key: dict[str, int] = {}
    for r in replay_rows:
        per_key[r["key"]] = per_key.get(r["key"], 0) + 1
    assert per_key and set(per_key.values()) == {n_categories}

    # Complete labels: every decision answers every category, as before; another data hash.
    full = _build(settings, tmp_path / "ds-full", **opts, learn_reading=False, benign_share=0.0,
                  single_labels_partial=False)  # fmt: skip
    assert full.counts["unanswered"] == {} and full.counts["label_pairs"] == {}
    rows = [r for r in load_trl_split(tmp_path / "ds-full", "sft", "train")
            if r["origin"] == "ledger"]  # fmt: skip
    assert {(r["key"], r["category"]) for r in rows} == {
        (k, c.id) for k in kind for c in POLICY.categories
    }
    assert full.data_hash != info.data_hash


def test_corrections_that_label_as_the_policy_does_answer_everything() -> None:
    from training.curation import labels_look_complete, multi_label_share

    ref = [
        _item(f"r{i}", ("drugs", "illegal_ads") if i % 5 == 0 else ("drugs",)) for i in range(50)
    ]
    ref += [_item(f"s{i}", ()) for i in range(50)]
    assert multi_label_share(ref) == 0.2
    single = [_item(f"c{i}", ("drugs",)) for i in range(40)]
    assert not labels_look_complete(single, ref)
    # One in ten with several labels: at least half the reference's share, complete.
    mixed = single[:36] + [_item(f"m{i}", ("drugs", "scam_fraud")) for i in range(4)]
    assert labels_look_complete(mixed, ref)
    assert not labels_look_complete(single[:36] + mixed[-2:], ref)  # 2 in 38: partial
    # Nothing to compare with: partial (leaving a paired answer out never teaches a wrong one).
    assert not labels_look_complete(mixed, [])
    assert not labels_look_complete([_item("s", ())], ref)


def test_cli_single_labels(settings: Settings, tmp_path: Path, monkeypatch) -> None:
    """`--single-labels` on `warden dataset build` and `warden retrain`: one spelling, a clear
    error for anything but partial or complete, and nothing built or trained on a typo."""
    _ingest(settings, tmp_path / "in", 30, seed=9)
    with training_cli(settings, monkeypatch) as invoke:
        for args in (
            ["dataset", "build", "--out", str(tmp_path / "bad"), "--single-labels", "some"],
            ["retrain", "--work", str(tmp_path / "turn"), "--single-labels", "some"],
        ):
            res = invoke(args)
            assert res.exit_code != 0
            assert "partial or complete" in res.output, res.output
        assert not (tmp_path / "bad").exists() and not (tmp_path / "turn").exists()
        res = invoke(
            ["dataset", "build", "--out", str(tmp_path / "ok"), "--single-labels", "complete"]
        )
        assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "ok" / "card.json").read_text())
    assert card["options"]["single_labels_partial"] is False
    assert card["counts"]["unanswered"] == {} and card["counts"]["label_pairs"] == {}
