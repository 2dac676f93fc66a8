"""The promotion gate: a candidate against the live model, row by row on the same rows.

Both evaluations carry per-row outcomes (`EvalReport.summary()["rows"]`: id, true labels,
predicted labels, retention flag). The gate pairs them by id and draws every line from them:

- average recall (the headline): the paired bootstrap's one-sided lower bound on
  candidate - live must be above `min_gain`. A point estimate that is higher by chance does not
  pass: on 40 rows one flipped answer moves average recall by several points.
- recall of each category may drop by at most `tolerance`, over all rows and on the retention
  rows alone (a gain on new data must not hide forgetting of the old);
- average recall on the retention rows may drop by at most `retention_tolerance`;
- the benign flag rate (harmless rows flagged), overall and on the retention rows, may rise by
  at most `benign_tolerance`, and the sample must show it: the paired bootstrap's one-sided
  upper bound on the rise (candidate - live, harmless rows resampled, the same rows for both
  models) must not exceed the tolerance. On 26 harmless rows one row newly flagged is a rise of
  0.038 whose bound is about 0.115: refused, whatever the point estimate, because 26 rows cannot
  tell a 2-point rise from none; on 400 rows the same single row is bounded near 0.008 and
  passes. Rows flagged by the candidate and no longer by live cancel each other in the rise;
  with no row changing, the bound is 0.

Missing rows refuse, never pass: no per-row outcomes, rows that differ between the two
evaluations, no retention rows, no harmless rows.

Run: warden models promote NAME [--dataset DIR]   (training.registry.promote calls `gate`)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from storage.policy import SAFE
from training.evaluate import average_recall, benign_flag_rate, category_metrics

EPS = 1e-12


@dataclass(frozen=True)
class GateCheck:
    name: str
    candidate: float | None
    live: float | None
    delta: float | None
    limit: float
    passed: bool
    # The bootstrap bound on the delta: lower for average recall (must be above the limit),
    # upper for the benign flag rate rise (must not exceed the limit); None on point lines.
    bound: float | None = None
    n: int | None = None  # rows the line was measured on


@dataclass(frozen=True)
class GateSettings:
    tolerance: float = 0.03  # per-category recall drop allowed
    retention_tolerance: float = 0.01  # retention average recall drop allowed
    benign_tolerance: float = 0.02  # benign flag rate rise allowed
    confidence: float = 0.95  # one-sided, of the bootstrap bound on the average recall gain
    min_gain: float = 0.0  # the lower bound must be above this
    n_boot: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class _Rows:
    ids: list[str]
    truth: list[frozenset[str]]
    cand: list[frozenset[str]]
    live: list[frozenset[str]]
    retention: list[bool]


def _pair(candidate: Mapping[str, Any], live: Mapping[str, Any]) -> _Rows | str:
    """The two evaluations' rows paired by id, or why they cannot be."""
    c_rows, l_rows = candidate.get("rows"), live.get("rows")
    for who, rows in (("candidate", c_rows), ("live", l_rows)):
        if not rows:
            return (
                f"the {who}'s evaluation has no per-row results; re-run `warden eval` "
                "(--dataset DIR or --manifest FILE) for both models"
            )
    assert c_rows is not None and l_rows is not None

    def key(r: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
        return (str(r["id"]), tuple(sorted(r["labels"])))

    cs, ls = sorted(c_rows, key=key), sorted(l_rows, key=key)
    if [key(r) for r in cs] != [key(r) for r in ls]:
        return (
            f"candidate and live were evaluated on different rows ({len(cs)} vs {len(ls)}); "
            "evaluate both on the same set"
        )
    return _Rows(
        ids=[str(r["id"]) for r in cs],
        truth=[frozenset(r["labels"]) for r in cs],
        cand=[frozenset(r["predicted"]) for r in cs],
        live=[frozenset(r["predicted"]) for r in ls],
        retention=[
            bool(r.get("retention")) or bool(q.get("retention"))
            for r, q in zip(cs, ls, strict=True)
        ],
    )


def _categories(rows: _Rows) -> list[str]:
    return sorted(
        {c for t in rows.truth for c in t} | {c for p in rows.cand + rows.live for c in p}
    )


def paired_bootstrap(
    truth: Sequence[frozenset[str]],
    cand: Sequence[frozenset[str]],
    live: Sequence[frozenset[str]],
    categories: Sequence[str],
    *,
    n_boot: int,
    seed: int,
    confidence: float,
) -> tuple[float, float]:
    """(observed candidate - live average recall, its one-sided `confidence` lower bound).

    Rows are resampled with replacement, the same rows for both models, and average recall
    ("safe" included, categories with no positive row in a resample left out, as in
    `evaluate.average_recall`) is recomputed on each resample.
    """
    cats = [*categories, SAFE]
    n = len(truth)
    # [n, K] truth and hits (true and predicted) per category; "safe" is the empty label set.
    t = np.array([[(not s) if c == SAFE else c in s for c in cats] for s in truth], dtype=float)

    def hits(pred: Sequence[frozenset[str]]) -> np.ndarray:
        p = np.array([[(not s) if c == SAFE else c in s for c in cats] for s in pred], dtype=float)
        return t * p

    h_c, h_l = hits(cand), hits(live)

    def avg(w: np.ndarray) -> np.ndarray:  # w: [B, n] row counts -> [B] average recall
        support = w @ t
        with np.errstate(invalid="ignore", divide="ignore"):
            rc, rl = (w @ h_c) / support, (w @ h_l) / support
        has = support > 0
        k = has.sum(axis=1)
        diff = np.where(has, rc - rl, 0.0).sum(axis=1) / np.maximum(k, 1)
        return np.where(k > 0, diff, 0.0)

    observed = float(avg(np.ones((1, n)))[0])
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_boot, 250):  # [250, n] row counts at a time: bounded memory
        size = min(250, n_boot - start)
        diffs.append(avg(rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)))
    lower = float(np.quantile(np.concatenate(diffs), 1.0 - confidence))
    return observed, lower


def benign_rise_bound(
    truth: Sequence[frozenset[str]],
    cand: Sequence[frozenset[str]],
    live: Sequence[frozenset[str]],
    *,
    n_boot: int,
    seed: int,
    confidence: float,
) -> tuple[float, float] | None:
    """(observed rise in the benign flag rate, candidate - live, and its one-sided `confidence`
    upper bound), or None without harmless rows.

    Only the harmless rows (no true label) count; they are resampled with replacement, the
    same rows for both models, and the mean of (candidate flags - live flags) is recomputed on
    each resample.
    """
    diff = np.array(
        [
            float(bool(c)) - float(bool(q))
            for t, c, q in zip(truth, cand, live, strict=True)
            if not t
        ]
    )
    n = len(diff)
    if n == 0:
        return None
    observed = float(diff.mean())
    if not diff.any():  # no harmless row changed: every resample rises by 0
        return observed, 0.0
    rng = np.random.default_rng(seed)
    rises = []
    for start in range(0, n_boot, 250):  # [250, n] row counts at a time: bounded memory
        size = min(250, n_boot - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)
        rises.append(counts @ diff / n)
    return observed, float(np.quantile(np.concatenate(rises), confidence))


def gate(
    candidate: Mapping[str, Any],
    live: Mapping[str, Any],
    settings: GateSettings | None = None,
) -> tuple[bool, list[GateCheck], list[str]]:
    """Compare two evaluation summaries (see the module docstring); (passed, checks, reasons)."""
    cfg = settings or GateSettings()
    paired = _pair(candidate, live)
    if isinstance(paired, str):
        return False, [], [paired]
    rows = paired
    checks: list[GateCheck] = []
    reasons: list[str] = []
    cats = _categories(rows)
    n = len(rows.ids)

    # Average recall, with the margin the sample supports.
    c_all = category_metrics(rows.truth, rows.cand, cats)
    l_all = category_metrics(rows.truth, rows.live, cats)
    c_avg, l_avg = average_recall(c_all), average_recall(l_all)
    if c_avg is None or l_avg is None:
        return False, checks, ["the evaluation rows carry no category to measure recall on"]
    delta, lower = paired_bootstrap(
        rows.truth,
        rows.cand,
        rows.live,
        cats,
        n_boot=cfg.n_boot,
        seed=cfg.seed,
        confidence=cfg.confidence,
    )
    ok = lower > cfg.min_gain
    checks.append(
        GateCheck("average_recall", c_avg, l_avg, delta, cfg.min_gain, ok, bound=lower, n=n)
    )
    if not ok:
        reasons.append(
            f"average recall {c_avg:.3f} vs live {l_avg:.3f} (gain {delta:+.3f}): its "
            f"{cfg.confidence:.0%} lower bound {lower:+.3f} on {n} paired rows is not above "
            f"{cfg.min_gain:+.3f}"
        )

    ret = [i for i, r in enumerate(rows.retention) if r]
    if not ret:
        reasons.append(
            "no retention rows in the evaluation, so forgetting cannot be measured; evaluate "
            "on a dataset built with replay data (--replay-manifest) or a manifest whose "
            'retention rows say "retention": true'
        )
    c_ret = category_metrics([rows.truth[i] for i in ret], [rows.cand[i] for i in ret], cats)
    l_ret = category_metrics([rows.truth[i] for i in ret], [rows.live[i] for i in ret], cats)
    for label, where, c_map, l_map in (
        ("recall", "", c_all, l_all),
        ("retention", " on the retention set", c_ret, l_ret),
    ):
        for cat in sorted(c_map):
            c_r, l_r = c_map[cat].recall, l_map[cat].recall
            if c_r is None or l_r is None:
                continue
            ok = (l_r - c_r) <= cfg.tolerance + EPS
            m = c_map[cat].support  # the rows that carry the category: one is 1/m of recall
            checks.append(GateCheck(f"{label}[{cat}]", c_r, l_r, c_r - l_r, cfg.tolerance, ok, n=m))
            if not ok:
                reasons.append(
                    f"{cat} recall{where} drops {l_r - c_r:.3f} (> {cfg.tolerance:.3f}): "
                    f"{c_map[cat].tp} of {m} rows caught, live {l_map[cat].tp}"
                )
    if ret:
        c_rv, l_rv = average_recall(c_ret), average_recall(l_ret)
        if c_rv is not None and l_rv is not None:
            ok = (l_rv - c_rv) <= cfg.retention_tolerance + EPS
            checks.append(
                GateCheck(
                    "retention", c_rv, l_rv, c_rv - l_rv, cfg.retention_tolerance, ok, n=len(ret)
                )
            )
            if not ok:
                reasons.append(
                    f"retention drops {l_rv - c_rv:.3f} (> {cfg.retention_tolerance:.3f})"
                )

    for name, idx in (("benign_flag_rate", range(n)), ("retention_benign_flag_rate", ret)):
        where = " on the retention set" if idx is ret else ""
        truth = [rows.truth[i] for i in idx]
        cand_p, live_p = [rows.cand[i] for i in idx], [rows.live[i] for i in idx]
        c_b, l_b = benign_flag_rate(truth, cand_p), benign_flag_rate(truth, live_p)
        n_benign = sum(1 for t in truth if not t)
        rise = benign_rise_bound(
            truth, cand_p, live_p, n_boot=cfg.n_boot, seed=cfg.seed, confidence=cfg.confidence
        )
        if c_b is None or l_b is None or rise is None:
            if idx is not ret or ret:  # no retention rows at all is already a reason
                reasons.append(f"no harmless rows{where}: the benign flag rate cannot be measured")
            continue
        delta, upper = rise
        ok = upper <= cfg.benign_tolerance + EPS
        checks.append(
            GateCheck(name, c_b, l_b, delta, cfg.benign_tolerance, ok, bound=upper, n=n_benign)
        )
        if not ok:
            reasons.append(
                f"benign flag rate{where} {l_b:.3f} -> {c_b:.3f} (rise {delta:+.3f}): its "
                f"{cfg.confidence:.0%} upper bound {upper:+.3f} on {n_benign} paired harmless "
                f"rows is above {cfg.benign_tolerance:.3f}"
            )
    return not reasons, checks, reasons
