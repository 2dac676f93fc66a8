"""bench/worker.py's scaling summary and argument checks (the runs themselves are minutes of
scoring: the lead runs them; see the module's docstring for the command)."""

from __future__ import annotations

import pytest

from bench import worker


def test_scaling_ratios_divide_each_process_count_by_one_process():
    rows = [
        {"processes": 1, "items_per_s_wall": 1.0, "items_per_s_after_start": 2.0},
        {"processes": 2, "items_per_s_wall": 1.5, "items_per_s_after_start": 3.0},
        {"processes": 4, "items_per_s_wall": 2.5, "items_per_s_after_start": None},
    ]
    got = worker.scaling_ratios(rows)
    assert got == {
        "1": {"wall": 1.0, "after_start": 1.0},
        "2": {"wall": 1.5, "after_start": 1.5},
        "4": {"wall": 2.5, "after_start": None},  # no span measured: no ratio, not a zero
    }
    assert worker.scaling_ratios(rows[1:]) == {}  # nothing to divide by


@pytest.mark.parametrize(
    "args", [["--n", "10", "--scale-n", "20"], ["--n", "0"], ["--scale-n", "0"]]
)
def test_bad_item_counts_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exc:
        worker.main([*args, "--results", "/nonexistent-dir/x.json"])
    assert exc.value.code == 2
    assert "--n" in capsys.readouterr().err
