"""The Models tab as an engineer reads it: every registered version with its headline metrics
(average recall, adversarial recall, ECE, retention, benign flag rate), the candidate against
the live model per category as a chart, the gate's reasons in words with every check's
numbers, and the candidate's dataset card (counts, retention rows, learnt swaps). Version
names, reasons and swaps are data and must render as text.

Evaluations are built by `training.evaluate.compute_report` (the summary `warden eval` stores),
so the gate judges them as it would real ones. The `browser` test runs its own app (a live
model registered in the shared one would change what the other browser tests score with).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app import charts
from app.context import AppContext
from app.tabs.models import compare, version_table
from storage.db import unit_of_work
from storage.models import Dataset
from storage.settings import Settings
from tests.app.conftest import LiveApp, start_app
from tests.app.test_browser import login
from training import registry
from training.evaluate import EvalRow, compute_report

PER_CLASS, RETAINED = 40, 10  # rows per class; the last 10 of each are retention rows
CLASSES = ("scam_fraud", "drugs", "safe")
HOSTILE = '<img src=x onerror="window.__pwned=1">'
CARD = {
    "name": "ds-2026-12-04",
    "data_hash": "ab" * 32,
    "policy_version": "p1",
    "built_at": "2026-12-04T10:00:00+00:00",
    "counts": {
        "items": {"train": 120, "validation": 15, "golden": 30},
        "sft": {"train": 118, "validation": 15},
        "preference": 14,
        "replay": 24,
        "retention": 9,
        "hard": 6,
        "classes_train": {"scam_fraud": 50, "drugs": 30, "safe": 40},
    },
    "reading": {
        "substitutions": [
            {"intended": "o", "observed": "0", "p": 0.41},
            {"intended": "e", "observed": HOSTILE, "p": 0.12},
        ],
        "aligned_words": 210,
        "unknown_words": 3,
        "affected_items": 17,
        "lexicon_words": 900,
    },
}


def _summary(policy, misses: dict[str, int], *, adversarial: bool = False) -> dict:
    """An evaluation in which the model misses the first `misses[c]` new rows of class c."""
    rows, scores = [], []
    for cls in CLASSES:
        labels = () if cls == "safe" else (cls,)
        for k in range(PER_CLASS):
            retained = k >= PER_CLASS - RETAINED
            hit = retained or k >= misses.get(cls, 0)
            variant = "leetspeak" if adversarial and k % 2 else "clean"
            rows.append(
                EvalRow(Path(f"/set/{cls}{k}.png"), labels, retention=retained, variant=variant)
            )
            scores.append({c: (0.9 if (c in labels) == hit else 0.1) for c in policy.ids})
    return compute_report("m", rows, scores, policy, eval_key="dataset:abab:golden").summary()


def _register(engine: Engine, policy, candidate: str) -> dict[str, dict]:
    """v-live (live) and `candidate`: better on drugs, but scam_fraud recall drops 0.2."""
    evals = {
        "v-live": _summary(policy, {"scam_fraud": 2, "drugs": 12}),
        candidate: _summary(policy, {"scam_fraud": 10, "drugs": 0}, adversarial=True),
    }
    key = "dataset:abab:golden"
    with unit_of_work(engine) as s:
        registry.register_model(s, "v-live", "/m/live", actor="eng", live=True)
        registry.register_model(
            s,
            candidate,
            "/m/cand",
            actor="eng",
            adapter_uri="/a/cand",
            manifest={"data_hash": CARD["data_hash"], "dataset": CARD["name"]},
        )
        for name, ev in evals.items():
            registry.record_eval(s, name, key, ev)
        s.add(
            Dataset(
                name=CARD["name"],
                path="/data/ds",
                data_hash=CARD["data_hash"],
                counts=CARD["counts"],
                card=CARD,
            )
        )
    return evals


@pytest.fixture
def ctx(settings: Settings, engine: Engine) -> AppContext:
    return AppContext.create(settings, engine)


def test_every_version_shows_its_headline_metrics(ctx: AppContext) -> None:
    evals = _register(ctx.engine, ctx.policy, "v-cand")
    with unit_of_work(ctx.engine) as s:
        table = version_table(registry.list_models(s)).set_index("name")
    assert list(table.index) == ["v-live", "v-cand"]
    for name, ev in evals.items():
        row = table.loc[name]
        assert row["average recall"] == f"{ev['average_recall']:.3f}"
        assert row["ECE"] == f"{ev['ece']:.3f}"
        assert row["retention"] == f"{ev['retention']:.3f}"
        assert row["benign flag rate"] == f"{ev['benign_flag_rate']:.3f}"
        assert row["rows"] == str(3 * PER_CLASS)
    assert (
        table.loc["v-cand", "adversarial recall"] == f"{evals['v-cand']['adversarial_recall']:.3f}"
    )
    assert table.loc["v-live", "status"] == "live" and table.loc["v-cand", "status"] == "candidate"


def test_candidate_against_live_per_category_and_the_gate_in_words(ctx: AppContext) -> None:
    evals = _register(ctx.engine, ctx.policy, "v-cand")
    with unit_of_work(ctx.engine) as s:
        view = compare(s, "v-cand", ctx)
    title = ctx.policy.category("scam_fraud").title
    live_bars, cand_bars = view.chart.data
    assert (live_bars.name, cand_bars.name) == ("v-live", "v-cand")
    assert title in cand_bars.y and "scam_fraud" not in cand_bars.y
    recall = dict(zip(cand_bars.y, cand_bars.x, strict=True))
    assert recall[title] == pytest.approx(evals["v-cand"]["per_category"]["scam_fraud"]["recall"])
    assert view.chart.layout.template.layout.colorway == tuple(charts.COLOURS)
    assert view.verdict.startswith("The gate would refuse v-cand against the live model v-live")
    assert "Scams and fraud recall drops 0.200 (> 0.030)" in view.verdict
    checks = view.checks.set_index("check")
    assert checks.loc[f"Recall: {title}", "result"] == "FAIL"
    assert checks.loc[f"Recall: {title}", "change"] == "-0.200"
    assert checks.loc["Recall: Drugs", "result"] == "pass"
    assert "Harmless items flagged" in checks.index
    with unit_of_work(ctx.engine) as s:
        assert not registry.promote(s, "v-cand", "eng").promoted
    with unit_of_work(ctx.engine) as s:
        verdict = compare(s, "v-cand", ctx).verdict
    assert "Last promote attempt: refused by eng at " in verdict
    assert "scam_fraud recall drops 0.200 (> 0.030): " in verdict.rstrip().splitlines()[-1]


def test_the_dataset_card_of_the_candidate(ctx: AppContext) -> None:
    _register(ctx.engine, ctx.policy, "v-cand")
    with unit_of_work(ctx.engine) as s:
        view = compare(s, "v-cand", ctx)
    assert "Dataset ds-2026-12-04" in view.card_text
    assert "retention rows" in view.card_text and ": 9." in view.card_text
    assert "Preference pairs (analyst corrected the model): 14" in view.card_text
    assert "Scams and fraud 50" in view.card_text
    assert "2 from 17 corrected items" in view.card_text
    splits = view.card_splits.set_index("split")
    assert splits.loc["golden", "images"] == "30" and splits.loc["train", "SFT rows"] == "118"
    assert view.swaps.values.tolist() == [["o", "0", "0.41"], ["e", HOSTILE, "0.12"]]
    # The per-row outcomes stay out of the JSON view (they are for the gate, not people).
    assert view.details["metrics"]["evals"]["dataset:abab:golden"]["rows"] == "120 rows"


def test_a_version_without_evaluations_or_card_says_what_to_do(ctx: AppContext) -> None:
    with unit_of_work(ctx.engine) as s:
        registry.register_model(s, "v-live", "/m/live", actor="eng", live=True)
        registry.register_model(s, "v-new", "/m/new", actor="eng")
        view = compare(s, "v-new", ctx)
        table = version_table(registry.list_models(s)).set_index("name")
    assert "no evaluation on a common set" in view.verdict
    assert "warden models promote v-new --dataset DIR" in view.verdict
    assert "No dataset card" in view.card_text
    assert view.chart.layout.annotations[0].text.startswith("No evaluation")
    assert table.loc["v-new", "evaluated on"] == "not evaluated"


# --- in the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    app = start_app(tmp_path_factory.mktemp("models-app"), {"WARDEN_MODEL__DEVICE": "cpu"})
    _register(app.engine, app.policy, HOSTILE)
    app.add_user("models_engineer", "engineer")
    app.add_user("models_admin", "admin")
    yield app
    app.proc.terminate()
    try:
        app.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.proc.kill()
    app.engine.dispose()


@pytest.mark.browser
@pytest.mark.parametrize("role", ["engineer", "admin"])
def test_models_tab_shows_metrics_chart_gate_and_card_as_text(
    wpage, models_app: LiveApp, screenshots: Path, role: str
) -> None:
    login(wpage, models_app, f"models_{role}")
    wpage.click("button[role=tab]:has-text('Models')")  # no Refresh press
    wpage.wait_for_function(
        "() => (document.querySelector('#m-gate textarea')?.value || '').includes('refuse')",
        timeout=60_000,
    )
    table = wpage.locator("#m-table").inner_text()
    assert HOSTILE in table and "v-live" in table and "average recall" in table
    gate_text = wpage.eval_on_selector("#m-gate textarea", "e => e.value")
    assert "Scams and fraud recall drops 0.200" in gate_text and HOSTILE in gate_text
    chart_js = (
        "() => (document.querySelector('#m-chart .js-plotly-plot')?._fullData || [])"
        ".map(t => [t.name, (t.x || []).length])"
    )
    wpage.wait_for_function(f"() => ({chart_js})().length === 2")
    traces = wpage.evaluate(chart_js)
    assert [n for n, _ in traces] == ["v-live", HOSTILE.replace("<", "").replace(">", "")]
    assert all(points > 0 for _, points in traces)
    assert "Recall: Scams and fraud" in wpage.locator("#m-checks").inner_text()
    assert HOSTILE in wpage.locator("#m-swaps").inner_text()
    assert "Dataset ds-2026-12-04" in wpage.eval_on_selector("#m-card textarea", "e => e.value")
    # Forcing past the gate is an admin's call: engineers are not offered the box.
    assert wpage.locator("#m-force").is_visible() == (role == "admin")
    wpage.wait_for_timeout(500)
    assert wpage.evaluate("() => window.__pwned") is None
    assert wpage.locator("img[src=x]").count() == 0
    wpage.screenshot(path=str(screenshots / f"models_{role}.png"), full_page=True)
