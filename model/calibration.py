"""Per-category calibration of raw P(Yes) scores, fitted on decided items.

A raw score p is mapped through its logit: p' = sigmoid(a * logit(p) + b).
- `temperature`: b = 0, a = 1/T (one parameter, keeps the ranking and the 0.5 point);
- `platt`: a and b both fitted (also fixes a shifted base rate), with Platt's smoothed
  targets (N+ + 1)/(N+ + 2) and (1)/(N- + 2) so a small set cannot push scores to 0 or 1.
Fitting is a few Newton steps on the log loss (numpy only). Categories with too few decided
items, or only one class among them, stay uncalibrated (identity) and say why.
The result serialises to a plain dict (stored in model_versions.calibration).

`fit_thresholds` is the other use of the same map: per-category flag thresholds chosen on a
validation split so that harmless rows are flagged at no more than a target rate, at the least
recall. A threshold t for a category whose policy threshold is T is the shift
p' = sigmoid(logit(p) - logit(t) + logit(T)) (method "threshold", a = 1), so "p >= t" is
"p' >= T" and the policy, the scorer and every reader of scores stay as they are. Stored with
a candidate (`THRESHOLDS_FILE` beside its weights or adapter) it is applied at scoring time.

Run: python -m model.calibration      (synthetic check: ECE before/after)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Method = Literal["temperature", "platt"]
_EPS = 1e-6
THRESHOLDS_FILE = "thresholds.json"  # a Calibration of method "threshold", beside the weights


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class CategoryCalibration:
    method: Method | Literal["identity", "threshold"]
    a: float = 1.0
    b: float = 0.0
    n: int = 0
    note: str | None = None
    threshold: float | None = None  # method "threshold": the raw score that flags

    def apply(self, p: float) -> float:
        if self.method == "identity":
            return float(p)
        return float(_sigmoid(self.a * _logit(np.asarray(p, dtype=np.float64)) + self.b))


@dataclass(frozen=True)
class Calibration:
    categories: dict[str, CategoryCalibration] = field(default_factory=dict)
    method: Method | Literal["threshold"] = "platt"
    info: dict[str, Any] = field(default_factory=dict)  # how it was fitted, for cards

    def apply(self, scores: Mapping[str, float]) -> dict[str, float]:
        """Calibrated scores; categories without a calibration pass through unchanged."""
        return {
            cid: self.categories[cid].apply(p) if cid in self.categories else float(p)
            for cid, p in scores.items()
        }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "categories": {
                cid: {"method": c.method, "a": c.a, "b": c.b, "n": c.n, "note": c.note}
                | ({"threshold": c.threshold} if c.threshold is not None else {})
                for cid, c in self.categories.items()
            },
        }
        if self.info:
            out["info"] = self.info
        return out

    def save(self, folder: str | Path) -> Path:
        """Write as `folder/thresholds.json` (what `load_thresholds` reads)."""
        path = Path(folder) / THRESHOLDS_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        cats = {
            cid: CategoryCalibration(
                method=c["method"],
                a=float(c.get("a", 1.0)),
                b=float(c.get("b", 0.0)),
                n=int(c.get("n", 0)),
                note=c.get("note"),
                threshold=float(c["threshold"]) if c.get("threshold") is not None else None,
            )
            for cid, c in dict(data.get("categories", {})).items()
        }
        return cls(
            categories=cats, method=data.get("method", "platt"), info=dict(data.get("info", {}))
        )


def load_thresholds(*folders: str | Path | None) -> Calibration | None:
    """The calibrated thresholds stored beside a model (the first of `folders` holding
    `thresholds.json`: an adapter's folder, then its base's); None when none does."""
    for folder in folders:
        if folder is None:
            continue
        path = Path(folder) / THRESHOLDS_FILE
        if path.is_file():
            try:
                return Calibration.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}: not a thresholds file ({exc})") from exc
    return None


def _log_loss(z: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    t = a * z + b
    # log(1 + e^t) - y t, computed stably
    return float(np.mean(np.logaddexp(0.0, t) - y * t))


def _fit_one(z: np.ndarray, y: np.ndarray, method: Method, iters: int = 100) -> tuple[float, float]:
    """Damped Newton on the mean log loss of sigmoid(a*z + b) against targets y in [0,1].

    Plain Newton diverges from a = 1 when raw scores are very overconfident (tiny curvature
    p(1-p) far out in the tails), so each step is halved until the loss goes down.
    """
    a, b = 1.0, 0.0
    ridge = 1e-8
    loss = _log_loss(z, y, a, b)
    for _ in range(iters):
        p = _sigmoid(a * z + b)
        r = p - y  # d loss / d logit, [n]
        w = np.maximum(p * (1 - p), 1e-12)
        if method == "temperature":
            step = np.array([np.mean(r * z) / (np.mean(w * z * z) + ridge), 0.0])
        else:
            g = np.array([np.mean(r * z), np.mean(r)])
            h = np.array(
                [[np.mean(w * z * z) + ridge, np.mean(w * z)], [np.mean(w * z), np.mean(w) + ridge]]
            )
            step = np.linalg.solve(h, g)
        scale = 1.0
        while scale > 1e-6:
            na, nb = a - scale * float(step[0]), b - scale * float(step[1])
            new_loss = _log_loss(z, y, na, nb)
            if new_loss <= loss:
                break
            scale /= 2
        else:
            break
        converged = loss - new_loss < 1e-12
        a, b, loss = na, nb, new_loss
        if converged:
            break
    if method == "temperature":
        a = max(a, 1e-3)  # a temperature is positive: never invert the ranking
    return a, b


def fit_calibration(
    scores: Sequence[Mapping[str, float]],
    labels: Sequence[Iterable[str]],
    *,
    categories: Sequence[str] | None = None,
    method: Method = "platt",
    min_items: int = 20,
) -> Calibration:
    """Fit one map per category from raw scores and the decided categories of the same items
    (`labels[i]`: the categories item i was decided to violate; empty = safe)."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} score rows but {len(labels)} label rows")
    cats = list(categories) if categories is not None else sorted({c for s in scores for c in s})
    truth = [set(lab) for lab in labels]
    out: dict[str, CategoryCalibration] = {}
    for cid in cats:
        rows = [(s[cid], cid in t) for s, t in zip(scores, truth, strict=True) if cid in s]
        n = len(rows)
        pos = sum(1 for _, y in rows if y)
        if n < min_items or pos == 0 or pos == n:
            why = f"{n} items, {pos} positive: need {min_items}+ with both classes"
            out[cid] = CategoryCalibration(method="identity", n=n, note=why)
            continue
        z = _logit(np.array([p for p, _ in rows], dtype=np.float64))
        y = np.array([1.0 if y else 0.0 for _, y in rows])
        if method == "platt":
            y = np.where(y > 0, (pos + 1) / (pos + 2), 1 / (n - pos + 2))
        a, b = _fit_one(z, y, method)
        out[cid] = CategoryCalibration(method=method, a=a, b=b, n=n)
    return Calibration(categories=out, method=method)


def _flag_counts(
    z: np.ndarray, benign: np.ndarray, truth: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, float]:
    """Per harmless row whether anything is flagged at logit thresholds `t` [C], and recall
    averaged over categories with positives. z: [N, C] logits; truth: [N, C] bool."""
    flags = z >= t[None, :]  # [N, C]
    has_pos = truth.any(axis=0)
    recall = (flags & truth).sum(axis=0)[has_pos] / truth.sum(axis=0)[has_pos]
    return flags[benign].any(axis=1), float(recall.mean()) if recall.size else 0.0


def fit_thresholds(
    scores: Sequence[Mapping[str, float]],
    labels: Sequence[Iterable[str]],
    policy_thresholds: Mapping[str, float],
    *,
    target_benign_rate: float = 0.01,
    max_threshold: float = 0.98,
    min_rows: int = 20,
    min_positives: int = 5,
    max_recall_loss: float | Mapping[str, float] = 0.03,
    margin: float = 0.0,
) -> Calibration:
    """Per-category thresholds on validation rows: flag harmless rows (no label) at no more
    than `target_benign_rate`, giving up as little recall as possible.

    A threshold is only raised where the validation rows can price it: a category with fewer
    than `min_positives` rows labelled with it stays at the policy threshold (raising it would
    look free only because no positive is there to lose: a loop turn's 86-row validation
    split once raised harassment to 0.96 and cost 27 points of it on held-out data), and no
    raise may lose more than `max_recall_loss` of a category's validation positives (0.03,
    the promotion gate's per-category tolerance: thresholds must not spend what the gate
    refuses a candidate for). A mapping gives each category its own share (a category missing
    from it may lose nothing): a loop turn passes what its chosen checkpoint has left of half
    the gate's tolerance (`training.checkpoint_choice`). `margin` (logit units): a positive
    scored less than `margin` above a new threshold counts as lost too, because rows the
    validation split has not seen score around it (a raise that looked free on validation,
    privacy to 0.92 losing none of 74 rows, lost 2 of 51 rows, 3.9 points, on golden).
    `info["held_at_policy"]` names the categories left alone for want of positives.

    Starts at the policy thresholds and never goes below them (a threshold is raised to buy
    precision, never lowered to buy recall). Greedy: while too many harmless rows are flagged,
    raise the one category's threshold to just above its next harmless score that clears the
    most harmless rows per positive row lost (ties: fewer lost). Thresholds stop at
    `max_threshold` so no category goes silent; when that is not enough the result says so in
    `info["reached"]`. `scores[i]`: raw P(Yes) per category; `labels[i]`: the row's true
    categories.
    """
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} score rows but {len(labels)} label rows")
    cats = [c for c in policy_thresholds if all(c in s for s in scores)]
    truth_sets = [set(lab) for lab in labels]
    benign = np.array([not t for t in truth_sets])
    n_benign = int(benign.sum())
    if len(scores) < min_rows or not cats or n_benign == 0:
        raise ValueError(
            f"{len(scores)} rows, {n_benign} harmless: need {min_rows}+ rows with harmless ones"
        )
    z = _logit(np.array([[s[c] for c in cats] for s in scores], dtype=np.float64))  # [N, C]
    truth = np.array([[c in t for c in cats] for t in truth_sets])  # [N, C]
    start = _logit(np.array([policy_thresholds[c] for c in cats], dtype=np.float64))
    t = start.copy()
    top = float(_logit(np.array(max_threshold)))
    positives = truth.sum(axis=0)  # [C]
    priced = positives >= min_positives
    # Positives a category may lose in all, as a count of its validation positives.
    shares = np.array(
        [
            max(0.0, float(max_recall_loss.get(c, 0.0)))
            if isinstance(max_recall_loss, Mapping)
            else float(max_recall_loss)
            for c in cats
        ]
    )
    budget = np.floor(shares * positives + 1e-9)
    flagged, _ = _flag_counts(z, benign, truth, t)
    before = float(flagged.mean())
    while flagged.mean() > target_benign_rate:
        best: tuple[float, float, int, float] | None = None  # (-gain/cost, cost, cat, new t)
        for j in range(len(cats)):
            if not priced[j]:
                continue
            hits = z[benign, j][z[benign, j] >= t[j]]
            if hits.size == 0:
                continue
            # Midway to the next score above it (any row), so the row it clears stays cleared
            # once the threshold is stored rounded and applied as a shift of the logit.
            above = z[:, j][z[:, j] > hits.min()]
            step_to = float(above.min()) if above.size else float(hits.min()) + 2e-3
            new = min((float(hits.min()) + step_to) / 2, top)
            if new <= t[j]:
                continue
            trial = t.copy()
            trial[j] = new
            f2, _ = _flag_counts(z, benign, truth, trial)
            gain = int(flagged.sum() - f2.sum())
            lost = int((truth[:, j] & (z[:, j] >= t[j]) & (z[:, j] < new + margin)).sum())
            lost_in_all = int(
                (truth[:, j] & (z[:, j] >= start[j]) & (z[:, j] < new + margin)).sum()
            )
            if lost_in_all > budget[j]:
                continue
            if gain <= 0 and new < top:
                # This row is also flagged by another category: step on past it.
                gain = 0
            key = (-(gain + 1e-3) / (lost + 1.0), float(lost), j, new)
            if best is None or key < best:
                best = key
        if best is None:
            break
        _, _, j, new = best
        t[j] = new
        flagged, _ = _flag_counts(z, benign, truth, t)
    _, recall_before = _flag_counts(z, benign, truth, start)
    _, recall_after = _flag_counts(z, benign, truth, t)
    out: dict[str, CategoryCalibration] = {}
    for j, cid in enumerate(cats):
        raw_t = float(_sigmoid(np.array(t[j])))
        out[cid] = CategoryCalibration(
            method="threshold",
            a=1.0,
            b=float(start[j] - t[j]),
            n=len(scores),
            threshold=round(raw_t, 6),
        )
    info = {
        "rows": len(scores),
        "harmless_rows": n_benign,
        "target_benign_rate": target_benign_rate,
        "benign_rate_before": round(before, 4),
        "benign_rate_after": round(float(flagged.mean()), 4),
        "average_recall_before": round(recall_before, 4),
        "average_recall_after": round(recall_after, 4),
        "reached": bool(flagged.mean() <= target_benign_rate),
        "min_positives": min_positives,
        "margin": margin,
        "max_recall_loss": (
            {c: round(float(shares[j]), 4) for j, c in enumerate(cats)}
            if isinstance(max_recall_loss, Mapping)
            else max_recall_loss
        ),
        "held_at_policy": {c: int(positives[j]) for j, c in enumerate(cats) if not priced[j]},
    }
    return Calibration(categories=out, method="threshold", info=info)


def expected_calibration_error(
    probs: Sequence[float], outcomes: Sequence[bool | int], n_bins: int = 10
) -> float:
    """ECE with equal-width bins: sum over bins of |mean prob - hit rate| * bin share."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(outcomes, dtype=np.float64)
    if p.size == 0:
        return 0.0
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for k in range(n_bins):
        sel = bins == k
        if sel.any():
            ece += sel.mean() * abs(p[sel].mean() - y[sel].mean())
    return float(ece)


def synthetic_check(n: int = 2000, seed: int = 0) -> dict[str, float]:
    """Miscalibrated synthetic scores (overconfident and shifted) for two categories, fitted on
    one half and measured on the other: ECE before and after, for both methods."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-1.0, 1.5, size=(n, 2))
    y = rng.random((n, 2)) < _sigmoid(true_logit)
    raw = _sigmoid(2.5 * true_logit + 1.0)  # overconfident, biased towards Yes
    ids = ["a", "b"]
    rows = [dict(zip(ids, r, strict=True)) for r in raw]
    labels = [[c for c, hit in zip(ids, yy, strict=True) if hit] for yy in y]
    half = n // 2
    result: dict[str, float] = {}
    test_p = raw[half:].ravel()
    test_y = y[half:].ravel()
    result["ece_raw"] = expected_calibration_error(test_p, test_y)
    for method in ("temperature", "platt"):
        cal = fit_calibration(rows[:half], labels[:half], method=method)  # type: ignore[arg-type]
        cal_p = np.array([[cal.apply(r)[c] for c in ids] for r in rows[half:]]).ravel()
        result[f"ece_{method}"] = expected_calibration_error(cal_p, test_y)
    return result


if __name__ == "__main__":
    for key, value in synthetic_check().items():
        print(f"{key:16s} {value:.4f}")
