"""Per-category calibration of raw P(Yes) scores, fitted on decided items.

A raw score p is mapped through its logit: p' = sigmoid(a * logit(p) + b).
- `temperature`: b = 0, a = 1/T (one parameter, keeps the ranking and the 0.5 point);
- `platt`: a and b both fitted (also fixes a shifted base rate), with Platt's smoothed
  targets (N+ + 1)/(N+ + 2) and (1)/(N- + 2) so a small set cannot push scores to 0 or 1.
Fitting is a few Newton steps on the log loss (numpy only). Categories with too few decided
items, or only one class among them, stay uncalibrated (identity) and say why.
The result serialises to a plain dict (stored in model_versions.calibration).

Run: python -m model.calibration      (synthetic check: ECE before/after)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Method = Literal["temperature", "platt"]
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class CategoryCalibration:
    method: Method | Literal["identity"]
    a: float = 1.0
    b: float = 0.0
    n: int = 0
    note: str | None = None

    def apply(self, p: float) -> float:
        if self.method == "identity":
            return float(p)
        return float(_sigmoid(self.a * _logit(np.asarray(p, dtype=np.float64)) + self.b))


@dataclass(frozen=True)
class Calibration:
    categories: dict[str, CategoryCalibration] = field(default_factory=dict)
    method: Method = "platt"

    def apply(self, scores: Mapping[str, float]) -> dict[str, float]:
        """Calibrated scores; categories without a calibration pass through unchanged."""
        return {
            cid: self.categories[cid].apply(p) if cid in self.categories else float(p)
            for cid, p in scores.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "categories": {
                cid: {"method": c.method, "a": c.a, "b": c.b, "n": c.n, "note": c.note}
                for cid, c in self.categories.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        cats = {
            cid: CategoryCalibration(
                method=c["method"],
                a=float(c.get("a", 1.0)),
                b=float(c.get("b", 0.0)),
                n=int(c.get("n", 0)),
                note=c.get("note"),
            )
            for cid, c in dict(data.get("categories", {})).items()
        }
        return cls(categories=cats, method=data.get("method", "platt"))


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
