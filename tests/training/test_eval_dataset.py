"""Evaluation reads what it is given: images with no text in the manifest go through RapidOCR
(`--ocr auto`), a built dataset's golden split is evaluated directly (`--dataset`) with its
retention rows, and `warden models promote --dataset` judges candidate and live on it.

The model is the shipped demo checkpoint (it leans on the OCR hint); OCR is RapidOCR with the
models in its wheel; the database is SQLite and PostgreSQL; the CLI is the real Typer app.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from model.loading import DEMO_MODEL_DIR, load_backend
from storage.db import make_engine, unit_of_work
from storage.settings import ModelSettings, Settings, get_settings
from storage.users import create_user
from tests.training.test_dataset import POLICY, _ingest, _items
from training import cli, registry
from training.evaluate import evaluate_backend, read_manifest, write_report
from training.synth import make_specs, render_sample

LINES = [
    ("Buy cocaine online, fast shipping", ["drugs"]),
    ("Send 1 BTC, get 2 BTC back", ["scam_fraud"]),
    ("Lovely walk in the park today", []),
]


def _card(text: str):
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (640, 240), "white")
    draw = ImageDraw.Draw(img)
    draw.text((24, 90), text, font=ImageFont.load_default(size=36), fill="black")
    return img


@pytest.fixture(scope="module")
def demo():
    return load_backend(ModelSettings(name="demo", device="cpu", quant="none"))


def test_a_manifest_without_text_is_read_by_ocr_not_scored_blind(demo, tmp_path: Path) -> None:
    lines = []
    for k, (text, labels) in enumerate(LINES):
        _card(text).save(tmp_path / f"{k}.png")
        lines.append(json.dumps({"path": f"{k}.png", "labels": labels}))  # no rendered_text
    _card("Win a free iPhone, click now").save(tmp_path / "m.png")
    with_text = {"path": "m.png", "labels": ["scam_fraud"], "rendered_text": "FREE IPHONE"}
    (tmp_path / "m.jsonl").write_text("\n".join([*lines, json.dumps(with_text)]) + "\n")
    rows = read_manifest(tmp_path / "m.jsonl", POLICY)

    rep = evaluate_backend(demo, POLICY, rows)  # the default: --ocr auto
    assert rep.ocr_sources == {"rapidocr": 3, "manifest": 1}
    assert [p["ocr_source"] for p in rep.predictions] == ["rapidocr"] * 3 + ["manifest"]
    flagged = [p["predicted"] for p in rep.predictions[:3]]
    assert "drugs" in flagged[0] and "scam_fraud" in flagged[1] and flagged[2] == [], flagged
    assert rep.summary()["ocr_sources"] == {"rapidocr": 3, "manifest": 1}
    page = write_report([rep], tmp_path / "r.html").read_text()
    assert "OCR hint source" in page and "manifest 1, rapidocr 3" in page

    blind = evaluate_backend(demo, POLICY, rows[:3], ocr="none")
    seen = evaluate_backend(demo, POLICY, rows[:3], ocr="auto")
    assert blind.ocr_sources == {"none": 3}
    assert seen.average_recall == 1.0 and blind.average_recall < seen.average_recall
    manifest_only = evaluate_backend(demo, POLICY, rows, ocr="manifest")
    assert manifest_only.ocr_sources == {"manifest": 4}


def _replay_manifest(folder: Path, n: int) -> Path:
    """SynthMod renders with their text, as `--replay-manifest` takes them."""
    folder.mkdir()
    lines = []
    for spec in make_specs(n, 11, variants=["clean"], size=224):
        image, rec = render_sample(spec)
        image.save(folder / f"r{spec.index}.png")
        lines.append(json.dumps({**rec, "path": f"r{spec.index}.png"}))
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "m.jsonl"


def test_eval_dataset_golden_with_retention_and_promote_on_it(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingest(settings, tmp_path / "in", 24, seed=5)
    replay = _replay_manifest(tmp_path / "replay", 24)
    monkeypatch.setenv("WARDEN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("WARDEN_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    app = typer.Typer()
    cli.register(app)
    run = CliRunner().invoke
    data = tmp_path / "d1"
    try:
        res = run(
            app,
            ["dataset", "build", "--out", str(data), "--replay-manifest", str(replay),
             "--golden-fraction", "0.25", "--no-reading"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        card = json.loads((data / "card.json").read_text())
        n_golden, n_retention = card["counts"]["items"]["golden"], card["counts"]["retention"]
        assert n_retention > 0 and n_golden > n_retention
        assert f"golden {n_golden} (retention {n_retention}:" in res.output
        golden, train = _items(data, "golden"), _items(data, "train")
        held = {r["key"] for r in golden if r["origin"] != "ledger"}
        assert len(held) == n_retention and all(
            r["origin"] == "replay:synth" for r in golden if r["key"] in held
        )
        assert not held & {r["key"] for r in train}  # retention rows are never trained on

        res = run(app, ["eval", "--model", "demo", "--dataset", str(data), "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        [summary] = out["results"]
        assert out["eval_key"] == f"dataset:{card['data_hash'][:16]}:golden"
        assert summary["n"] == n_golden and summary["n_retention"] == n_retention
        # Ledger rows carry no OCR text (imported, never scored): RapidOCR reads them; the
        # replay rows bring their rendered text.
        assert summary["ocr_sources"]["manifest"] == n_retention
        assert summary["ocr_sources"]["rapidocr"] == n_golden - n_retention
        assert Path(out["report"]).is_file()
        res = run(app, ["eval", "--model", "demo", "--dataset", str(data), "--split", "train"])
        assert res.exit_code == 2 and "golden or validation" in res.output

        engine = make_engine(settings.database_url)
        with unit_of_work(engine) as s:
            registry.register_model(s, "v1", str(DEMO_MODEL_DIR), actor="t", live=True)
            registry.register_model(s, "v2", str(DEMO_MODEL_DIR), actor="t")
            create_user(s, "mo", "a-long-password-1", "moderator")
            create_user(s, "boss", "a-long-password-2", "admin")
        # The same model as candidate: evaluated on the same golden rows, not better by any
        # margin, so refused.
        res = run(app, ["models", "promote", "v2", "--dataset", str(data)])
        assert res.exit_code == 1, res.output
        assert "lower bound" in res.output and "retention" in res.output
        with unit_of_work(engine) as s:
            for name in ("v1", "v2"):
                evals = registry.get_model(s, name).metrics["evals"]
                assert len(evals[out["eval_key"]]["rows"]) == n_golden
        res = run(app, ["models", "promote", "v2", "--force"])
        assert res.exit_code == 2 and "--admin" in res.output
        force = ["models", "promote", "v2", "--force", "--reason", "drill"]
        res = run(app, [*force, "--admin", "mo"])
        assert res.exit_code == 2 and "only an admin" in res.output
        res = run(app, [*force, "--admin", "boss"])
        assert res.exit_code == 0, res.output
        assert "promoted (forced: drill)" in res.output
        with unit_of_work(engine) as s:
            assert registry.live_model(s).name == "v2"
        engine.dispose()
    finally:
        get_settings.cache_clear()
