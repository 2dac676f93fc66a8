"""bench/loop.py on data it did not render: `--corrections`, `--heldout` and `--replay`
manifests in the ingest format, the shipped demo model (its recipe picked from its card, as
the registry does), the same turn as `warden retrain` cut to a few training steps. The
results name, per held-out set, harmful caught and benign flagged for live and candidate, the
gate's decision and reasons and the seconds of each stage; nothing is written outside --work
but the results file (TMPDIR, HOME, the working directory, the checkout's bench/results and
/tmp stay as they were)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.test_bench_cli import CHECKOUT_RESULTS, ROOT, _snapshot
from tests.training.test_eval_dataset import _card

BENIGN = ("Lovely walk in the park today", "Menu: soup of the day")


def _manifest(folder: Path, n: int, seed: int, *, retention: bool = False) -> Path:
    """Labelled renders with their text, written by the test (ingest manifest format)."""
    from training.synth import make_specs, render_sample

    folder.mkdir(parents=True)
    lines = []
    for spec in make_specs(n, seed, variants=["clean"], size=96):
        image, rec = render_sample(spec)
        image.save(folder / f"{seed}-{spec.index}.png")
        lines.append(
            json.dumps(
                {
                    "path": f"{seed}-{spec.index}.png",
                    "labels": rec["labels"],
                    "rendered_text": rec["rendered_text"],
                    "family": rec["family"],
                    "retention": retention,
                }
            )
        )
    for k, text in enumerate(BENIGN):  # harmless rows in every set: benign flagged is measured
        _card(text).save(folder / f"b{k}.png")
        row = {"path": f"b{k}.png", "labels": [], "rendered_text": text, "retention": retention}
        lines.append(json.dumps(row))
    (folder / "m.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "m.jsonl"


def _tmp_entries() -> set[str]:
    return {p.name for p in Path("/tmp").iterdir() if "warden" in p.name or "loop" in p.name}


def test_loop_runs_retrain_on_any_manifests_and_writes_only_under_work(tmp_path: Path) -> None:
    corrections = _manifest(tmp_path / "data" / "corr", 14, seed=21)
    heldout = [
        _manifest(tmp_path / "data" / "h1", 8, seed=22),
        _manifest(tmp_path / "data" / "h2", 6, seed=23),
    ]
    replay = _manifest(tmp_path / "data" / "replay", 16, seed=24, retention=True)
    work, results = tmp_path / "work", tmp_path / "out" / "loop.json"
    scratch, home, cwd = tmp_path / "scratch", tmp_path / "home", tmp_path / "cwd"
    for d in (scratch, home, cwd):
        d.mkdir()
    data_before = _snapshot(tmp_path / "data")
    results_before = _snapshot(CHECKOUT_RESULTS)
    tmp_before = _tmp_entries()

    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "loop.py"), "--corrections", str(corrections),
         "--heldout", str(heldout[0]), "--heldout", str(heldout[1]), "--replay", str(replay),
         "--max-steps", "3", "--n", "12", "--work", str(work),
         "--original-n", "6", "--benign-golden", "8", "--benign-validation", "4",
         "--results", str(results)],
        cwd=cwd,
        env=dict(os.environ, TMPDIR=str(scratch), HOME=str(home), HF_HUB_OFFLINE="1",
                 ORT_DISABLE_TELEMETRY="1"),
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]

    out = json.loads(results.read_text())
    assert out["corrections"] == 12 and out["recipe"] == "demo-distill"
    # The original categories: SynthMod's in-distribution set, rendered under --work.
    assert set(out["heldout"]) == {"m", "h2/m", "in_distribution"}
    assert out["original"].startswith(str(work)) and out["replay"] == str(replay)
    assert (
        out["heldout"]["in_distribution"]["live"]["n_harmful"]
        + out["heldout"]["in_distribution"]["live"]["n_benign"]
        == 6
    )
    assert out["per_category_recall_delta_original"]
    assert out["dataset"]["benign_held_out"] == {"golden": 8, "validation": 4}
    benign_line = next(c for c in out["gate"]["checks"] if c["name"] == "benign_flag_rate")
    assert benign_line["bound"] is not None and benign_line["n"] >= 8
    # Every held-out row's live and candidate predictions, to see which rows flip.
    flips = [json.loads(x) for x in (work / "predictions" / "m.jsonl").read_text().splitlines()]
    assert len(flips) == 10 and {"live", "candidate", "labels"} <= set(flips[0])
    for name in ("m", "h2/m"):
        h = out["heldout"][name]
        for who in ("live", "candidate"):
            m = h[who]
            assert 0.0 <= m["harmful_caught"] <= 1.0 and 0.0 <= m["benign_flagged"] <= 1.0
            assert (
                m["n_harmful"] + m["n_benign"] == (8 if h["manifest"] == str(heldout[0]) else 6) + 2
            )
        # Which rows flipped, counted on the same rows as the rates above.
        ch = h["row_changes"]
        assert (ch["n_harmful"], ch["n_benign"]) == (h["live"]["n_harmful"], h["live"]["n_benign"])
        lost = sum(1 for f in flips if set(f["labels"]) & set(f["live"]) - set(f["candidate"]))
        if name == "m":
            assert ch["harmful_rows_losing_a_category"] == lost
    gate = out["gate"]
    # The gate's golden rows, retention and the rest, the same way, from the registry's rows.
    for part in ("retention", "new"):
        ch = gate["row_changes"][part]
        assert ch["n_harmful"] + ch["n_benign"] > 0
        for r in ch["lost_rows"] + ch["newly_flagged_rows"]:
            assert r["text"] and set(r["live_scores"]) >= set(r["labels"])
    ret = next(c for c in gate["checks"] if c["name"] == "retention_benign_flag_rate")
    assert gate["row_changes"]["retention"]["n_benign"] == ret["n"], gate["row_changes"]
    assert isinstance(gate["promoted"], bool) and gate["checks"]
    assert gate["promoted"] or gate["reasons"]
    assert gate["eval_key"].startswith("dataset:")
    assert {"dataset", "post-train", "evaluate", "gate"} <= set(out["stages_s"])
    assert len(out["provenance"]["load_average_start"]) == 3 and out["load_average_at_end"]
    assert "harmful caught" in run.stdout and "gate: " in run.stdout

    # Nothing outside --work but the results file.
    assert list(scratch.iterdir()) == [] and list(home.iterdir()) == []
    assert list(cwd.iterdir()) == []
    assert _snapshot(tmp_path / "data") == data_before
    assert _snapshot(CHECKOUT_RESULTS) == results_before
    assert sorted(p.name for p in results.parent.iterdir()) == ["loop.json"]
    assert _tmp_entries() <= tmp_before
    assert (work / "turn" / "retrain-state.json").is_file() and (work / "warden.db").is_file()


def test_loop_refuses_corrections_without_a_heldout_set(tmp_path: Path) -> None:
    corrections = _manifest(tmp_path / "c", 2, seed=1)
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "loop.py"), "--corrections", str(corrections),
         "--work", str(tmp_path / "w"), "--results", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 2 and "needs at least one --heldout" in run.stderr
    assert not (tmp_path / "w").exists() and not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("flag", ["--retention-benign", "--retention-per-category"])
def test_loop_refuses_a_negative_retention_floor(tmp_path: Path, flag: str) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "loop.py"), flag, "-3",
         "--work", str(tmp_path / "w"), "--results", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 2 and f"{flag} must be 0 or more (got -3)" in run.stderr
    assert not (tmp_path / "w").exists() and not (tmp_path / "r.json").exists()


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
