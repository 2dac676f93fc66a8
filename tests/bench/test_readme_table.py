"""bench/readme_table.py: the README's benchmark table comes from the results files, only
between its markers, and `--check` catches drift and stale files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import provenance, readme_table

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "readme_table.py"
BEFORE = "# Project\n\nIntro | with a pipe.\n\n## Benchmarks\n\nSome prose.\n\n"
AFTER = "\n\nMore prose after the table.\n| a | b |\n"
README = BEFORE + readme_table.START + "\nold hand-written table\n" + readme_table.END + AFTER


def run_table(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Every results file the table reads, with the figures of the committed runs (their real
    shapes) and a provenance taken now."""
    out = tmp_path / "results"
    prov = provenance.start(__file__, []).finish()
    for src in readme_table.SOURCES:
        data = json.loads((ROOT / "bench" / "results" / src.file).read_text())
        provenance.write_results(out / src.file, data, prov)
    return out


@pytest.fixture
def readme(tmp_path: Path) -> Path:
    path = tmp_path / "README.md"
    path.write_text(README)
    return path


def _table_of(text: str) -> str:
    return text.split(readme_table.START, 1)[1].split(readme_table.END, 1)[0]


def _row(text: str, file: str) -> str:
    return next(line for line in text.splitlines() if f"/{file}`" in line)


def test_rewrites_only_between_the_markers(results: Path, readme: Path) -> None:
    run = run_table("--readme", str(readme), "--results-dir", str(results))
    assert run.returncode == 0, run.stderr
    text = readme.read_text()
    assert text.startswith(BEFORE + readme_table.START + "\n")
    assert text.endswith("\n" + readme_table.END + AFTER)
    table = _table_of(text)
    assert "old hand-written table" not in table
    commit = provenance.git_state()["commit"][:7]
    for src in readme_table.SOURCES:
        row = _row(table, src.file)
        assert f"`bench/{src.bench}.py`" in row and f"`{commit}" in row
        assert " → " in row and "no provenance" not in row
    # Figures are the files' own, formatted, not constants.
    queue = json.loads((results / "queue.json").read_text())
    p95 = queue["backends"]["sqlite"]["round_trip_ms"]["p95"]
    assert f"p95 {p95:.1f} ms" in _row(table, "queue.json")
    scoring = json.loads((results / "scoring.json").read_text())
    tiny = scoring["tiny_internvl"]
    assert f"{tiny['ratio_a_over_b']:.1f}x naive" in _row(table, "scoring.json")


def test_memory_row_says_which_figure_was_measured() -> None:
    """The 4-bit weight figure computed from tensor sizes is labelled as computed, the peak RSS
    as measured (a record of the shape bench/scoring.py writes for a real-shape run)."""
    mem = {
        "4bit": {"peak_rss_bytes": 3 * 2**30, "weights_bytes_computed": 1.1e9},
        "none": {"peak_rss_bytes": 5 * 2**30, "weights_bytes_computed": 4.1e9},
        "rss_ratio_4bit_over_bf16": 0.6,
    }
    rows = readme_table.scoring_rows({"device": "cpu", "real_shape_memory": mem})
    ((what, figure),) = rows
    assert "4-bit vs bf16 on CPU" in what
    assert "measured peak RSS on CPU: 3.00 GiB 4-bit vs 5.00 GiB bf16 (0.60x)" in figure
    assert "computed from tensor sizes, not measured: 1.10 GB vs 4.10 GB (0.27)" in figure
    failed = readme_table.scoring_rows(
        {"real_shape_memory": {"4bit": {"error": "oom"}, "none": mem["none"]}}
    )
    assert failed[0][1] == "load failed (4bit): see the results file"


def test_is_idempotent(results: Path, readme: Path) -> None:
    assert run_table("--readme", str(readme), "--results-dir", str(results)).returncode == 0
    once = readme.read_bytes()
    again = run_table("--readme", str(readme), "--results-dir", str(results))
    assert again.returncode == 0 and "already up to date" in again.stdout
    assert readme.read_bytes() == once
    check = run_table("--check", "--readme", str(readme), "--results-dir", str(results))
    assert check.returncode == 0, check.stderr


def test_check_fails_when_a_figure_changed_and_does_not_write(results: Path, readme: Path) -> None:
    assert run_table("--readme", str(readme), "--results-dir", str(results)).returncode == 0
    data = json.loads((results / "queue.json").read_text())
    data["backends"]["sqlite"]["round_trip_ms"]["p95"] += 7.0
    (results / "queue.json").write_text(json.dumps(data))
    written = readme.read_bytes()
    check = run_table("--check", "--readme", str(readme), "--results-dir", str(results))
    assert check.returncode == 1
    assert "differs" in check.stderr and "Traceback" not in check.stderr
    assert readme.read_bytes() == written


def test_a_file_without_provenance_is_shown_stale_and_fails_check(
    results: Path, readme: Path
) -> None:
    data = json.loads((results / "ingest.json").read_text())
    del data["provenance"]
    (results / "ingest.json").write_text(json.dumps(data))
    assert run_table("--readme", str(readme), "--results-dir", str(results)).returncode == 0
    row = _row(_table_of(readme.read_text()), "ingest.json")
    assert "(no provenance: stale, rerun `python bench/ingest.py`)" in row
    assert "files/s" not in row  # its figures are not presented as measured
    check = run_table("--check", "--readme", str(readme), "--results-dir", str(results))
    assert check.returncode == 1 and "ingest.json: no provenance" in check.stderr


def test_a_missing_results_file_is_named_and_fails_check(results: Path, readme: Path) -> None:
    (results / "labelstudio.json").unlink()
    assert run_table("--readme", str(readme), "--results-dir", str(results)).returncode == 0
    row = _row(_table_of(readme.read_text()), "labelstudio.json")
    assert "no results file: run `python bench/labelstudio.py`" in row
    check = run_table("--check", "--readme", str(readme), "--results-dir", str(results))
    assert check.returncode == 1


def test_a_dirty_tree_is_shown_beside_the_commit(results: Path, readme: Path) -> None:
    data = json.loads((results / "demo_foreign.json").read_text())
    data["provenance"]["git"]["dirty"] = True
    (results / "demo_foreign.json").write_text(json.dumps(data))
    run_table("--readme", str(readme), "--results-dir", str(results))
    assert " (dirty)`" in _row(_table_of(readme.read_text()), "demo_foreign.json")


def test_a_commit_that_is_not_in_the_history_is_said_so(results: Path, readme: Path) -> None:
    """A results file measured on a commit that never landed (a cut-off session's work) names
    code no one can check out: the row says so instead of passing it off as a commit of main."""
    data = json.loads((results / "demo_foreign.json").read_text())
    data["provenance"]["git"].update(commit="0123456789abcdef0123456789abcdef01234567", dirty=False)
    (results / "demo_foreign.json").write_text(json.dumps(data))
    run_table("--readme", str(readme), "--results-dir", str(results))
    table = _table_of(readme.read_text())
    assert "`0123456 (not in this history)`" in _row(table, "demo_foreign.json")
    # A commit of this checkout (the fixture's provenance is taken at HEAD) is shown plain.
    assert "not in this history" not in _row(table, "queue.json")


def test_print_changes_nothing(results: Path, readme: Path) -> None:
    run = run_table("--print", "--readme", str(readme), "--results-dir", str(results))
    assert run.returncode == 0
    assert readme.read_text() == README
    assert run.stdout.strip() == readme_table.render_table(results)[0].strip()


@pytest.mark.parametrize(
    "text",
    [
        "# no markers\n",
        f"{readme_table.END}\n{readme_table.START}\n",
        f"{readme_table.START}\n{readme_table.END}\n{readme_table.START}\n{readme_table.END}\n",
    ],
)
def test_bad_markers_are_a_clear_error(results: Path, tmp_path: Path, text: str) -> None:
    path = tmp_path / "R.md"
    path.write_text(text)
    for mode in ((), ("--check",)):
        run = run_table(*mode, "--readme", str(path), "--results-dir", str(results))
        assert run.returncode == 2
        assert "bench-table:" in run.stderr and "Traceback" not in run.stderr
        assert path.read_text() == text


def test_results_without_provenance_are_never_presented_as_measured(tmp_path: Path) -> None:
    """The committed files, each with its provenance taken away (as the ones written before
    provenance existed): every row reads stale and carries no figure."""
    folder = tmp_path / "r"
    folder.mkdir()
    for src in readme_table.SOURCES:
        data = json.loads((ROOT / "bench" / "results" / src.file).read_text())
        data.pop("provenance", None)
        (folder / src.file).write_text(json.dumps(data))
    block, problems = readme_table.render_table(folder)
    for src in readme_table.SOURCES:
        row = _row(block, src.file)
        assert f"(no provenance: stale, rerun `{src.rerun}`)" in row
        assert row.split("|")[2].strip() == ""  # no "what" either
        assert any(src.file in p for p in problems)
