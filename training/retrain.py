"""One turn of the loop in one command: the ledger's corrections -> dataset -> post-train ->
candidate and live evaluated on the same golden + retention rows -> gate -> promote or refuse.

Stages, each timed and each resumable:
  dataset     `training.dataset.build_dataset` over the ledger; replay from the latest dataset
              and `replay_manifest` (its held-out share is the gate's retention rows); its
              prompts in the layout the live model's base declares (model.prompts)
  post-train  `training.posttrain.post_train` over the live model's base with the live model's
              recipe (`training.recipes.pick`: the registry entry, the model's card, or a
              built-in recipe naming it; never generic settings by accident); the adapter is
              registered as a candidate that records its recipe
  evaluate    candidate and live on the dataset's golden split (`training.judge`)
  gate        `training.registry.promote`: promoted, or refused with its reasons; audited
              either way (model.promote / model.promote_refused)

WORK/retrain-state.json records each finished stage with a fingerprint of its inputs (the
ledger's decisions and predictions, options, recipe, upstream outputs). A rerun skips a stage
whose inputs did not change and whose outputs are still there; `from_stage` forces that stage
and every later one. A run killed during training continues from its last checkpoint.

Run: warden retrain [--work DIR] [--replay-manifest M] [--from-stage post-train] [--name NAME]
     bench/loop.py calls `run_retrain` for its turn.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from storage.errors import WardenError
from storage.policy import Policy
from training.gate import GateSettings

log = logging.getLogger(__name__)

STAGES = ("dataset", "post-train", "evaluate", "gate")
STATE_FILE = "retrain-state.json"


@dataclass(frozen=True)
class RetrainOptions:
    work: Path
    replay_manifest: Path | None = None
    replay_ratio: float = 0.3
    learn_reading: bool = True
    val_fraction: float = 0.1
    golden_fraction: float = 0.1
    # Harmless generated rows held out of training in golden / validation (BuildOptions): the
    # gate bounds the benign flag rate rise on golden's harmless rows (training.gate).
    # Harmless generated negatives in train, this share of the train items (BuildOptions); 0.3
    # where `warden dataset build` says 0.1: at 0.1 a leetspeak turn raised false alarms on
    # harmless phrases nobody corrected (0.225 -> 0.270, "Your parcel was delivered" flagged
    # drugs), at 0.3 it lowered them (-> 0.189) and caught as much (bench/HISTORY.md).
    benign_share: float = 0.3
    single_labels_partial: bool = True  # BuildOptions.single_labels_partial
    benign_golden: int = 240
    benign_validation: int = 60
    # Harmless replay items among the retention rows, at least (BuildOptions.retention_benign):
    # enough for the gate's retention benign flag rate line to bound a rise near its tolerance.
    retention_benign: int = 400
    # Retention rows per category, at least (BuildOptions.retention_per_category): a per-category
    # line's row is 1 point of recall at 100, where the 3-point tolerance is three rows.
    retention_per_category: int = 100
    seed: int = 0
    name: str | None = None  # the candidate's registry name (default: from the run)
    recipe: str | None = None  # override the recipe the registry picks
    post_overrides: dict[str, Any] = field(default_factory=dict)  # PostTrainConfig fields
    ocr: str = "auto"
    gate: GateSettings = field(default_factory=GateSettings)
    from_stage: str | None = None
    actor: str = "retrain"


@dataclass(frozen=True)
class StageRun:
    name: str
    seconds: float  # this run's time (0 when skipped)
    skipped: bool
    detail: str
    recorded_seconds: float | None = None  # the time it took when it ran


@dataclass(frozen=True)
class RetrainResult:
    live: str
    candidate: str
    recipe: str
    dataset: str
    run: str
    eval_key: str
    promoted: bool
    summary: str
    reasons: list[str]
    checks: list[dict[str, Any]]
    stages: list[StageRun]
    # The golden rows the candidate changed against live, retention and the rest
    # (`golden_row_changes`): which rows a refusal for forgetting is about.
    row_changes: dict[str, Any] = field(default_factory=dict)


class Reporter(Protocol):
    """Told when each stage starts and ends (the CLI prints, the bench times)."""

    def started(self, stage: str, what: str) -> None: ...

    def finished(self, run: StageRun) -> None: ...


class _Quiet:
    def started(self, stage: str, what: str) -> None:
        log.info("%s: %s", stage, what)

    def finished(self, run: StageRun) -> None:
        log.info("%s: %s (%.1f s)", run.name, run.detail, run.seconds)


# --- the state file ---------------------------------------------------------------------------


def _fingerprint(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


class _State:
    """WORK/retrain-state.json: per stage, its inputs' fingerprint, outputs and seconds."""

    def __init__(self, work: Path) -> None:
        self.path = work / STATE_FILE
        self.data: dict[str, Any] = {"stages": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except ValueError:
                log.warning("%s is not valid JSON; every stage runs again", self.path)

    def done(self, stage: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
        rec = self.data["stages"].get(stage)
        if rec and rec.get("fingerprint") == _fingerprint(inputs):
            return rec
        return None

    def record(
        self, stage: str, inputs: dict[str, Any], outputs: dict[str, Any], seconds: float
    ) -> None:
        self.data["stages"][stage] = {
            "fingerprint": _fingerprint(inputs),
            "inputs": inputs,
            "outputs": outputs,
            "seconds": round(seconds, 1),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str), encoding="utf-8")
        tmp.replace(self.path)

    def forget_from(self, stage: str) -> None:
        for name in STAGES[STAGES.index(stage) :]:
            self.data["stages"].pop(name, None)


# --- inputs -----------------------------------------------------------------------------------


def ledger_fingerprint(session: Session) -> dict[str, Any]:
    """What a dataset build reads from the ledger, cheaply: decisions and predictions (count,
    last id). Decisions are append-only, so any new correction changes it."""
    from storage.models import Decision, Prediction

    d = session.execute(select(func.count(Decision.id), func.max(Decision.id))).one()
    p = session.execute(select(func.count(Prediction.id), func.max(Prediction.id))).one()
    return {"decisions": [d[0], d[1]], "predictions": [p[0], p[1]]}


def _file_key(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    from training.evaluate import manifest_key

    if not Path(path).is_file():
        raise WardenError(f"replay manifest {path} does not exist")
    return [str(Path(path).resolve()), manifest_key(Path(path))]


def pick_turn_recipe(session: Session, live_name: str, override: str | None) -> str:
    """The recipe of this turn: `override`, else the one the live model's registry entry,
    card or base names (training.recipes.pick); WardenError when none is known."""
    from training import registry
    from training.recipes.pick import check_recipe, no_recipe_error, recipe_for_entry

    if override:
        return check_recipe(override)
    found = recipe_for_entry(registry.get_model(session, live_name))
    if not found:
        raise no_recipe_error(f"the live model {live_name!r}")
    return check_recipe(found)


# --- stages -----------------------------------------------------------------------------------


def _free_folder(
    work: Path, stem: str, taken: Callable[[str], bool], *, keep: Callable[[Path], bool]
) -> Path:
    """`work/stem`, or `work/stem-N` when that is taken; a folder left by a run that died
    before finishing (`keep(folder)` False) is removed and reused."""
    for i in itertools.count():
        name = stem if i == 0 else f"{stem}-{i}"
        folder = work / name
        if taken(name):
            continue
        if folder.exists():
            if keep(folder):
                continue
            shutil.rmtree(folder)
        return folder
    raise AssertionError("unreachable")


class _Turn:
    def __init__(
        self,
        engine: Engine,
        settings: Any,
        policy: Policy,
        options: RetrainOptions,
        reporter: Reporter,
    ) -> None:
        self.engine, self.settings, self.policy = engine, settings, policy
        self.options = options
        self.work = Path(options.work).resolve()
        self.reporter = reporter
        self.state = _State(self.work)
        self.runs: list[StageRun] = []
        self.forced = False

    def stage(
        self,
        name: str,
        what: str,
        inputs: dict[str, Any],
        run: Callable[[bool], dict[str, Any]],
        still_there: Callable[[dict[str, Any]], bool],
        detail: Callable[[dict[str, Any]], str],
    ) -> dict[str, Any]:
        """Run stage `name` unless the state holds it finished with these inputs (and
        `still_there(outputs)`); `run(forced)` returns the outputs to record."""
        if self.options.from_stage == name:
            self.forced = True
            self.state.forget_from(name)
        prior = None if self.forced else self.state.done(name, inputs)
        if prior is not None and still_there(prior["outputs"]):
            out = prior["outputs"]
            rec = StageRun(name, 0.0, True, detail(out), recorded_seconds=prior.get("seconds"))
            self.runs.append(rec)
            self.reporter.finished(rec)
            return out
        self.reporter.started(name, what)
        t0 = time.perf_counter()
        out = run(self.forced)
        seconds = time.perf_counter() - t0
        self.state.record(name, inputs, out, seconds)
        rec = StageRun(name, round(seconds, 1), False, detail(out))
        self.runs.append(rec)
        self.reporter.finished(rec)
        return out

    # dataset ----------------------------------------------------------------------------------

    def dataset(self) -> dict[str, Any]:
        from model import loading, prompts
        from storage.db import unit_of_work
        from training import registry

        o = self.options
        with unit_of_work(self.engine) as s:
            live = registry.live_model(s)
            if live is None:
                raise WardenError(
                    "no live model in the registry; register one with "
                    "`warden models register NAME --uri DIR --live`"
                )
            ledger = ledger_fingerprint(s)
            # The turn post-trains over the live model's base: its prompts are in the layout
            # that base declares (model.prompts), or post-training refuses the dataset.
            layout = prompts.model_layout(loading.resolve_model_path(live.uri))
        inputs = {
            "ledger": ledger,
            "policy": self.policy.version,
            "replay_manifest": _file_key(o.replay_manifest),
            "replay_ratio": o.replay_ratio,
            "learn_reading": o.learn_reading,
            "val_fraction": o.val_fraction,
            "golden_fraction": o.golden_fraction,
            "benign_share": o.benign_share,
            "benign_golden": o.benign_golden,
            "benign_validation": o.benign_validation,
            "retention_benign": o.retention_benign,
            "retention_per_category": o.retention_per_category,
            "seed": o.seed,
            # Only when not the default: turns from before layouts keep their fingerprints.
            **({"layout": layout} if layout != prompts.DEFAULT_LAYOUT else {}),
            **({} if o.single_labels_partial else {"single_labels": "complete"}),
        }

        def run(forced: bool) -> dict[str, Any]:
            from storage.blobs import BlobStore
            from storage.models import Dataset
            from training.dataset import BuildOptions, build_dataset

            with unit_of_work(self.engine) as s:

                def registered(name: str) -> bool:
                    return (
                        s.scalars(select(Dataset.id).where(Dataset.name == name)).first()
                        is not None
                    )

                out = _free_folder(
                    self.work,
                    f"dataset-{_fingerprint(inputs)[:10]}",
                    registered,
                    keep=lambda f: (f / "card.json").exists(),
                )
                info = build_dataset(
                    s,
                    out,
                    self.policy,
                    read_image=BlobStore(self.settings.blobs_path).read_bytes,
                    options=BuildOptions(
                        replay_ratio=o.replay_ratio,
                        replay_manifest=o.replay_manifest,
                        learn_reading=o.learn_reading,
                        val_fraction=o.val_fraction,
                        golden_fraction=o.golden_fraction,
                        benign_share=o.benign_share,
                        single_labels_partial=o.single_labels_partial,
                        benign_golden=o.benign_golden,
                        benign_validation=o.benign_validation,
                        retention_benign=o.retention_benign,
                        retention_per_category=o.retention_per_category,
                        seed=o.seed,
                        layout=layout,
                        name=out.name,
                    ),
                    actor=o.actor,
                )
            return {
                "path": info.path,
                "name": info.name,
                "data_hash": info.data_hash,
                "live": live.name,
                "items": info.counts["items"],
                "retention": info.counts.get("retention", 0),
                "benign_held_out": info.counts.get("benign_held_out"),
                "preference": info.counts["preference"],
                "unanswered": info.counts.get("unanswered", {}),
                "swaps": len(((info.card.get("reading") or {}).get("substitutions")) or []),
            }

        return self.stage(
            "dataset",
            "curating the ledger's decisions into train / validation / golden",
            inputs,
            run,
            lambda out: (Path(out["path"]) / "card.json").is_file(),
            lambda out: (
                f"{out['name']}: train {out['items']['train']}, validation "
                f"{out['items']['validation']}, golden {out['items']['golden']} (retention "
                f"{out['retention']}); {out['preference']} preference pairs; "
                f"{out['swaps']} character swaps learnt"
            ),
        )

    # post-train -------------------------------------------------------------------------------

    def post_train(self, ds: dict[str, Any]) -> dict[str, Any]:
        from storage.db import unit_of_work
        from training import registry
        from training.posttrain import PostTrainConfig
        from training.recipes import load_recipe

        o = self.options
        live_name = ds["live"]
        with unit_of_work(self.engine) as s:
            recipe = pick_turn_recipe(s, live_name, o.recipe)
            base = registry.get_model(s, live_name).uri
        config = load_recipe(recipe).post or PostTrainConfig()
        config = replace(config, **o.post_overrides)
        if "choice_category_tolerance" not in o.post_overrides:
            # Checkpoint choice judges categories by the line this turn's gate will apply.
            config = replace(config, choice_category_tolerance=o.gate.tolerance)
        if config.replay_manifest and not config.replay_ratio:
            config = replace(config, replay_ratio=self.settings.train.replay_ratio)
        inputs = {
            "dataset": ds["data_hash"],
            "base": base,
            "recipe": recipe,
            "config": asdict(config),
            "name": o.name,
        }

        def run(forced: bool) -> dict[str, Any]:
            from storage.models import ModelVersion
            from training.posttrain import post_train, register_run

            fp = _fingerprint(inputs)[:10]
            folder = self.work / f"run-{fp}"
            if forced and folder.exists():
                folder = _free_folder(
                    self.work, f"run-{fp}", lambda _n: False, keep=lambda _f: True
                )
            if (folder / "manifest.json").is_file():
                res = _finished_run(folder)  # trained, but the turn stopped before recording it
            else:
                # A run folder without manifest.json died mid-training: continue it from its
                # last checkpoint.
                res = post_train(
                    base,
                    Path(ds["path"]),
                    folder,
                    config,
                    resume=folder.exists(),
                    policy=self.policy,
                )
            res = replace(res, manifest={**res.manifest, "recipe": recipe})
            with unit_of_work(self.engine) as s:
                known = s.scalars(
                    select(ModelVersion.name).where(ModelVersion.adapter_uri == res.adapter)
                ).first()
                name = known or o.name or self._candidate_name(s, live_name, fp)
                if known is None:
                    register_run(s, res, name=name, actor=o.actor)
            sft = res.metrics.get("sft") or {}
            return {
                "run": res.out,
                "adapter": res.adapter,
                "candidate": name,
                "recipe": recipe,
                "base": base,
                "steps": sft.get("global_step"),
                "first_loss": sft.get("first_loss"),
                "last_loss": sft.get("last_loss"),
            }

        def still_there(out: dict[str, Any]) -> bool:
            if not (Path(out["adapter"]) / "adapter_config.json").is_file():
                return False
            with unit_of_work(self.engine) as s:
                try:
                    return registry.get_model(s, out["candidate"]).adapter_uri == out["adapter"]
                except WardenError:
                    return False

        def detail(out: dict[str, Any]) -> str:
            loss = (
                f"; loss {out['first_loss']:.3f} -> {out['last_loss']:.3f}"
                if out.get("first_loss") is not None and out.get("last_loss") is not None
                else ""
            )
            return (
                f"candidate {out['candidate']} (recipe {out['recipe']}, base {out['base']}, "
                f"{out['steps']} steps{loss})"
            )

        return self.stage(
            "post-train",
            f"LoRA over {base} with recipe {recipe}",
            inputs,
            run,
            still_there,
            detail,
        )

    @staticmethod
    def _candidate_name(session: Session, live_name: str, fp: str) -> str:
        from storage.models import ModelVersion

        stem = f"{live_name.split('+')[0]}+{fp[:8]}"
        for i in itertools.count():
            name = stem if i == 0 else f"{stem}-{i}"
            if not session.scalars(
                select(ModelVersion.id).where(ModelVersion.name == name)
            ).first():
                return name
        raise AssertionError("unreachable")

    # evaluate ---------------------------------------------------------------------------------

    def _turn_live(self, ds: dict[str, Any], candidate: str) -> str:
        """The live model the candidate is judged against: the current one, unless the
        candidate itself went live since (then the one the turn started from)."""
        from storage.db import unit_of_work
        from training import registry

        with unit_of_work(self.engine) as s:
            live = registry.live_model(s)
        if live is None or live.name == candidate:
            return str(ds["live"])
        return live.name

    def evaluate(self, ds: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
        from storage.db import unit_of_work
        from training.evaluate import read_dataset
        from training.judge import evaluate_models, golden_evaluations

        cand = run["candidate"]
        live = self._turn_live(ds, cand)
        inputs = {
            "dataset": ds["data_hash"],
            "candidate": cand,
            "live": live,
            "ocr": self.options.ocr,
        }

        def do(forced: bool) -> dict[str, Any]:
            names = [cand, live]
            with unit_of_work(self.engine) as s:
                if forced:
                    rows, key = read_dataset(Path(ds["path"]), "golden", self.policy)
                    evaluate_models(names, rows, key, s, self.policy, ocr=self.options.ocr)
                else:
                    key, _ = golden_evaluations(
                        s, names, Path(ds["path"]), self.policy, ocr=self.options.ocr
                    )
                return {"eval_key": key, "live": live, "candidate": cand} | _headline(s, names, key)

        def still_there(out: dict[str, Any]) -> bool:
            from training.judge import has_rows

            with unit_of_work(self.engine) as s:
                try:
                    return all(has_rows(s, n, out["eval_key"]) for n in (cand, live))
                except WardenError:
                    return False

        def detail(out: dict[str, Any]) -> str:
            def one(n: str) -> str:
                h = out["models"][n]
                return (
                    f"{n} avg recall {_f(h['average_recall'])}, "
                    f"benign flagged {_f(h['benign_flag_rate'])}"
                )

            return f"on {out['eval_key']} (n={out['n']}): " + "; ".join(
                one(n) for n in (cand, live)
            )

        return self.stage(
            "evaluate",
            f"{cand} and {live} on the golden + retention rows",
            inputs,
            do,
            still_there,
            detail,
        )

    # gate -------------------------------------------------------------------------------------

    def gate(self, ev: dict[str, Any]) -> dict[str, Any]:
        from storage.db import unit_of_work
        from training import registry

        cand, live, key = ev["candidate"], ev["live"], ev["eval_key"]
        inputs = {
            "eval_key": key,
            "candidate": cand,
            "live": live,
            "gate": asdict(self.options.gate),
        }

        def run(forced: bool) -> dict[str, Any]:
            with unit_of_work(self.engine) as s:
                current = registry.live_model(s)
                if current is not None and current.name == cand:
                    return {
                        "promoted": True,
                        "summary": f"{cand} is already live",
                        "reasons": [],
                        "checks": [],
                    }
                res = registry.promote(
                    s, cand, self.options.actor, eval_key=key, settings=self.options.gate
                )
            return {
                "promoted": res.promoted,
                "summary": res.summary(),
                "reasons": list(res.reasons),
                "checks": [asdict(c) for c in res.checks],
            }

        return self.stage(
            "gate",
            f"{cand} against {live}",
            inputs,
            run,
            lambda out: True,
            lambda out: out["summary"],
        )


def _finished_run(folder: Path) -> Any:
    """The PostTrainResult of a finished run folder, from its manifest.json."""
    from training.posttrain import PostTrainResult

    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return PostTrainResult(
        out=str(folder.resolve()),
        adapter=str((folder / "adapter").resolve()),
        base=m["base"],
        data_hash=m["data_hash"],
        method=m["config"]["method"],
        metrics=m.get("metrics") or {},
        manifest=m,
    )


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _headline(session: Session, names: list[str], key: str) -> dict[str, Any]:
    from training import registry

    models = {}
    n = 0
    for name in names:
        ev = (registry.get_model(session, name).metrics.get("evals") or {}).get(key) or {}
        n = len(ev.get("rows") or [])
        models[name] = {
            "average_recall": ev.get("average_recall"),
            "benign_flag_rate": ev.get("benign_flag_rate"),
        }
    return {"models": models, "n": n}


def run_retrain(
    engine: Engine,
    settings: Any,
    policy: Policy,
    options: RetrainOptions,
    reporter: Reporter | None = None,
) -> RetrainResult:
    """One turn (see the module docstring); every stage commits its own unit of work, so an
    interrupted turn keeps what it finished."""
    if options.from_stage is not None and options.from_stage not in STAGES:
        raise WardenError(f"--from-stage {options.from_stage!r}: use {', '.join(STAGES)}")
    work = Path(options.work).resolve()
    if work.is_file():
        raise WardenError(f"--work {work} is a file")
    work.mkdir(parents=True, exist_ok=True)
    turn = _Turn(engine, settings, policy, options, reporter or _Quiet())
    ds = turn.dataset()
    run = turn.post_train(ds)
    ev = turn.evaluate(ds, run)
    g = turn.gate(ev)
    changes = golden_row_changes(engine, ds["path"], ev["eval_key"], ev["live"], run["candidate"])
    return RetrainResult(
        live=ev["live"],
        candidate=run["candidate"],
        recipe=run["recipe"],
        dataset=ds["path"],
        run=run["run"],
        eval_key=ev["eval_key"],
        promoted=bool(g["promoted"]),
        summary=g["summary"],
        reasons=list(g["reasons"]),
        checks=list(g["checks"]),
        stages=turn.runs,
        row_changes=changes,
    )


def golden_row_changes(
    engine: Engine, dataset: str | Path, eval_key: str, live: str, candidate: str
) -> dict[str, Any]:
    """The golden rows `candidate` changed against `live` in their stored evaluations on
    `eval_key` (`training.evaluate.row_changes`), the retention rows and the rest apart, each
    listed row with its text from the dataset; {} where either evaluation has no rows."""
    from storage.db import unit_of_work
    from training import registry
    from training.dataset import load_items
    from training.evaluate import row_changes

    with unit_of_work(engine) as s:
        evals = {
            n: ((registry.get_model(s, n).metrics.get("evals") or {}).get(eval_key) or {}).get(
                "rows"
            )
            for n in (live, candidate)
        }
    if not all(evals.values()):
        return {}
    if len({tuple(sorted(str(r["id"]) for r in rows or [])) for rows in evals.values()}) > 1:
        log.warning("%s and %s were evaluated on different rows of %s", live, candidate, eval_key)
        return {}  # the gate refuses on that already
    # The text alone: the golden split's images are not read again for a report.
    texts = {
        r["key"]: (r["text"], r["ocr_text"] or None)
        for r in load_items(Path(dataset), "golden", columns=("key", "text", "ocr_text"))
    }
    out: dict[str, Any] = {}
    for part, keep in (("retention", True), ("new", False)):
        pick = {
            n: [
                r | dict(zip(("text", "ocr_text"), texts.get(r["id"], (None, None)), strict=True))
                for r in rows or []
                if bool(r.get("retention")) == keep
            ]
            for n, rows in evals.items()
        }
        out[part] = row_changes(pick[live], pick[candidate])
    return out
