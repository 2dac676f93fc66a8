"""Evaluate model versions on the same rows and store the results where the gate reads them.

`load_model` loads a registry name ('live' included) exactly as a serving process does
(`model.live.resolve_target` + `model.loading.load_target`: same version name, adapter and
stored calibration), or any other model by directory / hub id / 'demo'. `evaluate_models`
scores each on one list of rows and records a registry version's summary under the rows' key.
`golden_evaluations` does that for a candidate and the live model on a built dataset's golden
split (golden + retention rows), skipping a model that already has per-row results there.

Run: warden eval --model NAME --dataset DIR --against live
     warden models promote NAME --dataset DIR      (both call this module)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storage.errors import WardenError
from storage.policy import Policy


def load_model(spec: str, session: Any | None) -> tuple[Any, str, Any]:
    """(backend, display name, registry target or None) for a name, 'live', 'demo' or a dir."""
    from model.live import resolve_target
    from model.loading import load_backend, load_target
    from storage.settings import get_settings

    base = get_settings().model
    target = resolve_target(session, spec) if session is not None else None
    if spec == "live" and target is None:
        if session is None:
            raise WardenError("--model live needs a database with a live model")
        raise WardenError("no live model in the registry; `warden models promote` one")
    if target is not None:
        return load_target(target, base=base), target.name, target
    settings = base.model_copy(update={"name": spec, "adapter": None})
    return load_backend(settings), spec, None


def evaluate_models(
    specs: Sequence[str],
    rows: list[Any],
    key: str,
    session: Any | None,
    policy: Policy,
    *,
    ocr: str,
    rationale: bool = False,
    record: bool = True,
) -> list[Any]:
    """Evaluate each model on the same rows; store registry versions' results under `key`."""
    from training import registry
    from training.evaluate import OCR_MODES, evaluate_backend

    if ocr not in OCR_MODES:
        raise WardenError(f"--ocr {ocr!r}: use {', '.join(OCR_MODES)}")
    reports = []
    for spec in specs:
        backend, name, info = load_model(spec, session)
        rep = evaluate_backend(
            backend,
            policy,
            rows,
            model_name=name,
            ocr=ocr,  # type: ignore[arg-type]
            rationale=rationale,
            eval_key=key,
        )
        reports.append(rep)
        if record and session is not None and info is not None:
            registry.record_eval(session, info.name, key, rep.summary())
    return reports


def has_rows(session: Any, name: str, key: str) -> bool:
    """Whether registry version `name` already has per-row results on `key` (what the gate
    needs); a summary without rows does not count."""
    from training import registry

    evals = registry.get_model(session, name).metrics.get("evals") or {}
    return bool((evals.get(key) or {}).get("rows"))


def golden_evaluations(
    session: Any,
    names: Sequence[str],
    dataset: Path,
    policy: Policy,
    *,
    ocr: str = "auto",
) -> tuple[str, list[Any]]:
    """Evaluate registry versions `names` on `dataset`'s golden split, each only if it has no
    per-row result there yet; (the split's evaluation key, the reports of those evaluated)."""
    from training.evaluate import read_dataset

    rows, key = read_dataset(dataset, "golden", policy)
    todo = [n for n in dict.fromkeys(names) if not has_rows(session, n, key)]
    return key, evaluate_models(todo, rows, key, session, policy, ocr=ocr)
