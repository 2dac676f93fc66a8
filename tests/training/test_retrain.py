"""`warden retrain`: one turn of the loop through the real CLI on a tiny real-architecture VLM,
on SQLite and PostgreSQL: ledger with corrections -> dataset -> post-train with the recipe the
registry records -> candidate and live on the same golden + retention rows -> gate, whose
decision is audited; a rerun skips what is finished, `--from-stage` forces; a refused gate
leaves the live model as it was; no recipe known is a clear refusal, never generic settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from storage.db import make_engine, unit_of_work
from storage.models import AuditEvent, Item
from storage.settings import Settings, get_settings
from tests.training.test_dataset import _ingest, _predict
from tests.training.test_eval_dataset import _replay_manifest
from training import cli, registry
from training.recipes.pick import recipe_for_base
from training.retrain import STATE_FILE

TINY_RECIPE = """\
name: tiny-test
post:
  method: sft
  lr: 0.01
  max_steps: 3
  batch_size: 8
  logging_steps: 1
  save_steps: 2
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "internvl", "internvl", seed=0)


@pytest.fixture
def app(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WARDEN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("WARDEN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WARDEN_MODEL__DEVICE", "cpu")
    monkeypatch.setenv("WARDEN_MODEL__QUANT", "none")
    monkeypatch.setenv("WARDEN_MODEL__DTYPE", "float32")
    get_settings.cache_clear()
    app = typer.Typer()
    cli.register(app)
    yield app
    get_settings.cache_clear()


def _ledger(settings: Settings, folder: Path, n: int, seed: int) -> None:
    """n labelled SynthMod items (import decisions) that the live model scored as harmless:
    every violating one is a correction of the model."""
    rows = _ingest(settings, folder, n, seed=seed)
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as s:
        for item in s.scalars(select(Item)):
            rec = rows.get(item.filename.rsplit("/", 1)[-1])
            if rec is not None:
                _predict(s, item.id, [], rec["rendered_text"])
    engine.dispose()


def _audit(settings: Settings, prefix: str) -> list[AuditEvent]:
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as s:
        events = list(
            s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.startswith(prefix))
                .order_by(AuditEvent.id)
            )
        )
        s.expunge_all()
    engine.dispose()
    return events


def _models(settings: Settings) -> dict[str, registry.ModelVersionInfo]:
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as s:
        out = {m.name: m for m in registry.list_models(s)}
    engine.dispose()
    return out


def test_a_turn_through_the_cli_resumes_and_a_refusal_keeps_the_live_model(
    settings: Settings, app, tiny: Path, tmp_path: Path
) -> None:
    run = CliRunner().invoke
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    _ledger(settings, tmp_path / "in", 20, seed=5)
    replay = _replay_manifest(tmp_path / "replay", 16)
    work = tmp_path / "work"

    res = run(app, ["models", "register", "live0", "--uri", str(tiny), "--live",
                    "--recipe", str(recipe)])  # fmt: skip
    assert res.exit_code == 0, res.output
    # A benign tolerance below zero refuses whatever the candidate does: the gate's refusal
    # path, deterministically.
    turn = ["retrain", "--work", str(work), "--replay-manifest", str(replay), "--ocr",
            "manifest", "--benign-tolerance", "-1", "--benign-golden", "8",
            "--benign-validation", "4", "--retention-per-category", "0"]  # fmt: skip
    res = run(app, turn)
    assert res.exit_code == 1, res.output
    for stage in ("dataset", "post-train", "evaluate", "gate"):
        assert f"done {stage} [" in res.output, res.output
    assert "refused:" in res.output and "benign flag rate" in res.output, res.output[-3000:]
    if "rows caught, live" in res.output:  # a category lost rows: the CLI names them
        assert "golden rows the candidate changed" in res.output, res.output[-3000:]

    models = _models(settings)
    [cand] = [m for m in models.values() if m.name != "live0"]
    assert models["live0"].status == "live" and cand.status == "candidate"
    # The recipe came from the live model's registry entry, and the candidate records it.
    assert cand.manifest["recipe"] == str(recipe.resolve())
    assert cand.manifest["config"]["max_steps"] == 3 and cand.manifest["config"]["lr"] == 0.01
    state = json.loads((work / STATE_FILE).read_text())
    key = state["stages"]["evaluate"]["outputs"]["eval_key"]
    # Harmless generated rows held out in golden and validation (the gate's benign line).
    held = state["stages"]["dataset"]["outputs"]["benign_held_out"]
    assert held == {"golden": 8, "validation": 4}
    assert key.startswith("dataset:") and key.endswith(":golden")
    # Candidate and live judged on the same rows, retention rows among them.
    c_rows = models[cand.name].metrics["evals"][key]["rows"]
    l_rows = models["live0"].metrics["evals"][key]["rows"]
    assert sorted(r["id"] for r in c_rows) == sorted(r["id"] for r in l_rows)
    assert any(r.get("retention") for r in c_rows)
    [refused] = _audit(settings, "model.promote")
    assert refused.action == "model.promote_refused" and refused.details["name"] == cand.name
    assert any("benign flag rate" in r for r in refused.details["reasons"])
    assert {s: state["stages"][s]["seconds"] >= 0 for s in state["stages"]} == {
        "dataset": True,
        "post-train": True,
        "evaluate": True,
        "gate": True,
    }

    # Rerun, nothing changed: every stage is skipped; no new run, no new gate decision.
    runs_before = sorted(p.name for p in work.glob("run-*"))
    res = run(app, turn)
    assert res.exit_code == 1, res.output
    assert res.output.count("skipped, inputs unchanged") == 4, res.output
    assert sorted(p.name for p in work.glob("run-*")) == runs_before
    assert len(_audit(settings, "model.promote")) == 1

    # --from-stage gate runs the gate again (a second audited decision), nothing before it.
    res = run(app, [*turn, "--from-stage", "gate"])
    assert res.exit_code == 1, res.output
    assert res.output.count("skipped, inputs unchanged") == 3 and "done gate [" in res.output
    assert [e.action for e in _audit(settings, "model.promote")] == ["model.promote_refused"] * 2

    # New corrections in the ledger: the dataset and everything after it run again.
    _ledger(settings, tmp_path / "more", 6, seed=9)
    res = run(app, [*turn, "--json"])
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert [s["skipped"] for s in out["stages"]] == [False] * 4
    assert out["candidate"] != cand.name and out["live"] == "live0" and not out["promoted"]
    # The rows behind the verdict, as the gate counted them: the same rows, row by row.
    changes = out["row_changes"]
    new_rows = json.loads((work / STATE_FILE).read_text())["stages"]["evaluate"]["outputs"]
    c_rows = _models(settings)[out["candidate"]].metrics["evals"][new_rows["eval_key"]]["rows"]
    assert changes["retention"]["n_harmful"] + changes["retention"]["n_benign"] == sum(
        1 for r in c_rows if r["retention"]
    )
    assert changes["new"]["n_harmful"] + changes["new"]["n_benign"] == sum(
        1 for r in c_rows if not r["retention"]
    )
    for r in changes["retention"]["lost_rows"] + changes["new"]["newly_flagged_rows"]:
        assert r["text"]  # the dataset's OCR text, to see what was lost
    assert len(list(work.glob("run-*"))) == 2 and len(list(work.glob("dataset-*"))) == 2
    assert _models(settings)["live0"].status == "live"


def test_no_recipe_known_refuses_clearly(
    settings: Settings, app, tiny: Path, tmp_path: Path
) -> None:
    run = CliRunner().invoke
    # The demo checkpoint's card says which recipe built it; a bare model folder says nothing.
    assert recipe_for_base("demo") == "demo-distill"
    assert recipe_for_base(str(tiny)) is None
    assert recipe_for_base("OpenGVLab/InternVL3_5-2B-HF") == "internvl3_5-2b"

    _ledger(settings, tmp_path / "in", 8, seed=3)
    assert run(app, ["models", "register", "bare", "--uri", str(tiny), "--live"]).exit_code == 0
    res = run(app, ["retrain", "--work", str(tmp_path / "w"), "--ocr", "manifest"])
    assert res.exit_code == 2, res.output
    assert "no recipe is known for the live model 'bare'" in res.output
    assert "--recipe" in res.output and "generic" in res.output
    assert not list((tmp_path / "w").glob("run-*"))  # nothing trained on generic settings

    # `warden train post` on that base without --recipe refuses the same way ...
    data = Path(
        json.loads((tmp_path / "w" / STATE_FILE).read_text())["stages"]["dataset"]["outputs"][
            "path"
        ]
    )
    res = run(app, ["train", "post", "--base", str(tiny), "--data", str(data),
                    "--out", str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 2 and "no recipe is known for base" in res.output, res.output
    assert not (tmp_path / "r").exists()
    # ... and trains once the registry records a recipe for it.
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    res = run(app, ["models", "register", "bare2", "--uri", str(tiny), "--recipe", str(recipe)])
    assert res.exit_code == 0, res.output
    res = run(app, ["train", "post", "--base", str(tiny), "--data", str(data),
                    "--out", str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"recipe: {recipe.resolve()} (picked for this base)" in res.output
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["config"]["max_steps"] == 3


def test_the_rows_a_turn_changed_print_as_text_never_as_markup() -> None:
    """Lost rows carry the content's own text (adversarial: markup, control characters)."""
    from rich.console import Console

    from training.cli import _print_row_changes
    from training.evaluate import row_changes

    hostile = "[bold red]FREE[/] <script>alert(1)</script> [link=http://x]win[/link]\n\x1b[31m"
    live = [
        {"id": "a", "labels": ["scam_fraud"], "predicted": ["scam_fraud"], "ocr_text": hostile},
        {"id": "b", "labels": [], "predicted": [], "ocr_text": "Garden party at 3 pm"},
    ]
    cand = [
        {"id": "a", "labels": ["scam_fraud"], "predicted": []},
        {"id": "b", "labels": [], "predicted": ["drugs"]},
    ]
    console = Console(record=True, width=200)
    _print_row_changes(console, {"retention": row_changes(live, cand), "new": {}})
    out = console.export_text()
    assert "[bold red]FREE[/] <script>alert(1)</script> [link=http://x]win[/link]" in out
    assert "\x1b" not in out and "lost scam_fraud" in out and "newly flagged drugs" in out
    assert "retention: 1 of 1 harmful rows lose a category" in out
    console = Console(record=True, width=200)
    _print_row_changes(console, {})  # nothing changed, or no per-row results: no table
    assert console.export_text() == ""


def test_golden_row_changes_says_nothing_rather_than_guess(engine) -> None:
    """Without both evaluations' rows, or on different rows, there is no row-by-row answer:
    {} (the gate has refused on that already), not an error after the turn's gate."""
    from training.retrain import golden_row_changes

    row = {"labels": ["scam_fraud"], "predicted": ["scam_fraud"], "retention": True}
    with unit_of_work(engine) as s:
        registry.register_model(s, "a", "/m/a", actor="t", live=True)
        registry.register_model(s, "b", "/m/b", actor="t")
        registry.record_eval(s, "a", "k", {"rows": [row | {"id": "1"}, row | {"id": "2"}]})
        registry.record_eval(s, "b", "k", {"rows": [row | {"id": "1"}, row | {"id": "3"}]})
        registry.record_eval(s, "b", "k0", {"average_recall": 1.0})
    nowhere = "/nonexistent/dataset"  # never read: nothing to pair
    assert golden_row_changes(engine, nowhere, "k", "a", "b") == {}
    assert golden_row_changes(engine, nowhere, "k0", "a", "b") == {}
    assert golden_row_changes(engine, nowhere, "missing", "a", "b") == {}
