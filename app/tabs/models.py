"""Models tab (engineers, admins): every registered model version with its headline metrics,
the chosen candidate against the live model per category, what the gate says about promoting
it (its reasons in words and every check with its numbers), the candidate's dataset card, and
promote (through the registry's gate) / rollback. The tab fills when it opens.

The change is a database fact: every serving process (this one at once, workers and other
servers within seconds) swaps to the new live version on its next check
(`model.loading.live_backend`). Names, reasons and learnt swaps are data: they reach the page
only through plain-text components (Textbox, Dataframe "str", JSON) and `charts.plain`.

    rows = version_table(registry.list_models(session))   # what the table shows
    view = compare(session, "v7", ctx)                      # chart, gate, card for one version
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import charts
from app.context import AppContext
from app.roles import ENGINEERS, current_user, requires
from storage.db import unit_of_work

COLUMNS = [
    "name",
    "status",
    "created",
    "promoted",
    "evaluated on",
    "rows",
    "average recall",
    "adversarial recall",
    "ECE",
    "retention",
    "benign flag rate",
]
CHECK_COLUMNS = ["check", "candidate", "live", "change", "allowed", "lower bound", "rows", "result"]
SPLIT_COLUMNS = ["split", "images", "SFT rows"]
SWAP_COLUMNS = ["intended", "read as", "probability"]


@dataclass(frozen=True)
class ModelsTab:
    tab: gr.Tab


@dataclass
class Comparison:
    """What the tab shows about one version against the live model."""

    name: str | None
    live: str | None
    eval_key: str | None
    chart: go.Figure
    verdict: str
    checks: pd.DataFrame
    card_text: str
    card_splits: pd.DataFrame
    swaps: pd.DataFrame
    details: dict[str, Any] = field(default_factory=dict)


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else ""


def latest_eval(metrics: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The version's last stored evaluation (`record_eval`): (its key, its summary)."""
    evals = metrics.get("evals") or {}
    if not isinstance(evals, dict) or not evals:
        return None, {}
    key = metrics.get("last_eval")
    key = key if key in evals else list(evals)[-1]
    summary = evals[key]
    return key, summary if isinstance(summary, dict) else {}


def version_table(rows: list[Any]) -> pd.DataFrame:
    """One row per registered version with the headline numbers of its last evaluation."""
    out = []
    for r in rows:
        key, ev = latest_eval(r.metrics)
        out.append(
            [
                r.name,
                r.status,
                r.created_at.strftime("%Y-%m-%d %H:%M"),
                r.promoted_at.strftime("%Y-%m-%d %H:%M") if r.promoted_at else "",
                key or "not evaluated",
                str(ev.get("n", "")) if ev else "",
                _num(ev.get("average_recall")),
                _num(ev.get("adversarial_recall")),
                _num(ev.get("ece")),
                _num(ev.get("retention")),
                _num(ev.get("benign_flag_rate")),
            ]
        )
    return pd.DataFrame(out, columns=COLUMNS).astype(str)


def check_title(name: str, ctx: AppContext) -> str:
    """A gate line's name (`recall[scam_fraud]`) in words."""
    if "[" in name and name.endswith("]"):
        kind, cat = name[:-1].split("[", 1)
        title = charts.category_title(ctx.policy, cat)
        return f"Recall: {title}" if kind == "recall" else f"Recall on retention rows: {title}"
    return {
        "average_recall": "Average recall (the gain's lower bound must be above the limit)",
        "retention": "Average recall on retention rows",
        "benign_flag_rate": "Harmless items flagged",
        "retention_benign_flag_rate": "Harmless retention items flagged",
    }.get(name, charts.plain(name))


def reason_in_words(reason: str, ctx: AppContext) -> str:
    """A gate reason with its leading category id (`scam_fraud recall drops ...`) as the
    policy's title ("Scams and fraud recall drops ...")."""
    head, _, rest = reason.partition(" recall")
    if rest and head in {*ctx.policy.ids, "safe"}:
        return f"{charts.category_title(ctx.policy, head)} recall{rest}"
    return reason


def _checks_frame(checks: list[Any], ctx: AppContext) -> pd.DataFrame:
    rows = [
        [
            check_title(c.name, ctx),
            _num(c.candidate),
            _num(c.live),
            f"{c.delta:+.3f}" if c.delta is not None else "",
            _num(c.limit),
            f"{c.bound:+.3f}" if c.bound is not None else "",
            "" if c.n is None else str(c.n),
            "pass" if c.passed else "FAIL",
        ]
        for c in checks
    ]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS).astype(str)


def _recall_chart(
    ctx: AppContext, name: str, cand: dict[str, Any], live_name: str | None, live: dict[str, Any]
) -> go.Figure:
    """Candidate vs live recall per category on one evaluation set (horizontal bars)."""
    title = "Recall per category: candidate vs live" if live else "Recall per category"
    fig = charts.figure(title, xaxis=dict(range=[0, 1], title="recall"), barmode="group")
    cats = [
        c
        for c in [*ctx.policy.ids, "safe"]
        if (cand.get("per_category") or {}).get(c, {}).get("recall") is not None
        or (live.get("per_category") or {}).get(c, {}).get("recall") is not None
    ][::-1]
    if not cats:
        return charts.no_data(fig, "No evaluation with per-category recall yet: run warden eval")
    titles = charts.category_titles(ctx.policy, cats)
    for label, ev in ((live_name, live), (name, cand)):
        if not ev:
            continue
        per = ev.get("per_category") or {}
        fig.add_bar(
            x=[(per.get(c) or {}).get("recall") for c in cats],
            y=titles,
            orientation="h",
            name=charts.plain(label),
        )
    fig.update_layout(height=max(280, 90 + 34 * len(cats)))
    return fig


def _dataset_card(session: Session, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The card of the dataset a version was trained on: the `datasets` row with the manifest's
    data hash (or name), else `card.json` in the manifest's data folder."""
    from storage.models import Dataset

    for column, value in ((Dataset.data_hash, manifest.get("data_hash")),
                          (Dataset.name, manifest.get("dataset"))):  # fmt: skip
        if isinstance(value, str) and value:
            row = session.scalars(
                select(Dataset).where(column == value).order_by(Dataset.id.desc())
            ).first()
            if row is not None and row.card:
                return dict(row.card) | {"name": row.card.get("name") or row.name}
    folder = manifest.get("data")
    if isinstance(folder, str) and (Path(folder) / "card.json").is_file():
        try:
            return json.loads((Path(folder) / "card.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return None


def card_view(
    card: dict[str, Any] | None, ctx: AppContext
) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """(summary text, counts per split, learnt swaps) of a dataset card, all plain text."""
    empty_splits = pd.DataFrame([], columns=SPLIT_COLUMNS)
    empty_swaps = pd.DataFrame([], columns=SWAP_COLUMNS)
    if not card:
        return (
            "No dataset card: this version's manifest names no dataset Warden built "
            "(warden dataset build, then warden train post).",
            empty_splits,
            empty_swaps,
        )
    counts = card.get("counts") or {}
    items, sft = counts.get("items") or {}, counts.get("sft") or {}
    splits = pd.DataFrame(
        [
            [s, str(items.get(s, 0)), str(sft.get(s, "-"))]
            for s in ("train", "validation", "golden")
        ],
        columns=SPLIT_COLUMNS,
    )
    classes = counts.get("classes_train") or {}
    class_text = ", ".join(
        f"{charts.category_title(ctx.policy, str(c))} {n}"
        for c, n in sorted(classes.items(), key=lambda kv: -int(kv[1] or 0))
    )
    lines = [
        f"Dataset {card.get('name', '?')} (data hash {str(card.get('data_hash', ''))[:16]}), "
        f"built {card.get('built_at', '?')}, policy {card.get('policy_version', '?')}.",
        f"Golden rows: {items.get('golden', 0)}, of which retention rows (replay/general data "
        f"the gate checks forgetting on): {counts.get('retention', 0)}.",
        f"Preference pairs (analyst corrected the model): {counts.get('preference', 0)}. "
        f"Replay rows in train: {counts.get('replay', 0)}. "
        f"Hard examples: {counts.get('hard', 0)}.",
    ]
    if class_text:
        lines.append(f"Train rows per class: {class_text}.")
    reading = card.get("reading")
    subs = (reading or {}).get("substitutions") or []
    if reading:
        lines.append(
            f"Learnt character swaps: {len(subs)} from {reading.get('affected_items', 0)} "
            f"corrected items ({reading.get('aligned_words', 0)} words aligned); the reader "
            f"maps them back onto {reading.get('lexicon_words', 0)} known words."
        )
    else:
        lines.append("Learnt character swaps: none (no reader was learnt for this dataset).")
    swaps = pd.DataFrame(
        [
            [str(s.get("intended", "")), str(s.get("observed", "")), _num(s.get("p"), 2)]
            for s in subs
        ],  # fmt: skip
        columns=SWAP_COLUMNS,
    )
    return "\n".join(lines), splits, swaps.astype(str)


def last_attempt(session: Session, name: str) -> str | None:
    """The last recorded promote of `name` (audit): who, when, the outcome and its reasons."""
    from storage.models import AuditEvent

    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action.in_(("model.promote", "model.promote_refused")))
        .order_by(AuditEvent.id.desc())
        .limit(500)
    )
    ev = next((e for e in events if (e.details or {}).get("name") == name), None)
    if ev is None:
        return None
    outcome = "refused" if ev.action == "model.promote_refused" else "promoted"
    if (ev.details or {}).get("forced"):
        outcome = f"forced past the gate ({ev.details.get('force_reason') or 'no reason given'})"
    reasons = "; ".join(str(r) for r in (ev.details or {}).get("reasons") or [])
    when = ev.at.strftime("%Y-%m-%d %H:%M")
    return f"Last promote attempt: {outcome} by {ev.actor} at {when} UTC" + (
        f": {reasons}" if reasons else "."
    )


def _details(info: Any) -> dict[str, Any]:
    """Metrics and manifest for the JSON view, without the per-row outcomes (thousands of rows
    the gate reads, nobody does)."""
    metrics = dict(info.metrics)
    evals = metrics.get("evals")
    if isinstance(evals, dict):
        metrics["evals"] = {
            k: {f: (f"{len(v)} rows" if f == "rows" and isinstance(v, list) else v)
                for f, v in (ev.items() if isinstance(ev, dict) else [])}
            for k, ev in evals.items()
        }  # fmt: skip
    return json.loads(json.dumps({"metrics": metrics, "manifest": info.manifest}, default=str))


def compare(session: Session, name: str | None, ctx: AppContext) -> Comparison:
    """Version `name` against the live model: chart, the gate's verdict and checks, its card."""
    from training import registry
    from training.gate import GateSettings, gate

    rows = registry.list_models(session)
    info = next((r for r in rows if r.name == name), None)
    live = next((r for r in rows if r.status == registry.LIVE), None)
    if info is None:
        text, splits, swaps = card_view(None, ctx)
        return Comparison(
            None,
            live.name if live else None,
            None,
            charts.no_data(charts.figure("Recall per category"), "No model version registered"),
            "No model version registered yet (warden models register, or warden train post).",
            _checks_frame([], ctx),
            text,
            splits,
            swaps,
        )
    c_evals = info.metrics.get("evals") or {}
    l_evals = (live.metrics.get("evals") or {}) if live and live is not info else {}
    key = registry._common_eval(info, live) if live and live is not info else None  # type: ignore[arg-type]
    checks: list[Any] = []
    if info.status == registry.LIVE:
        verdict = f"{name} is the live model."
        key, cand_ev = latest_eval(info.metrics)
        chart = _recall_chart(ctx, info.name, cand_ev, None, {})
    elif live is None:
        verdict = f"No model is live: promoting {name} makes it the first live model."
        key, cand_ev = latest_eval(info.metrics)
        chart = _recall_chart(ctx, info.name, cand_ev, None, {})
    elif key is None or key not in c_evals or key not in l_evals:
        verdict = (
            f"The gate would refuse: {name} and the live model {live.name} have no evaluation "
            f"on a common set. Run `warden models promote {name} --dataset DIR` (it evaluates "
            "both on the dataset's golden split) or `warden eval --dataset DIR` for each."
        )
        key, cand_ev = latest_eval(info.metrics)
        chart = _recall_chart(ctx, info.name, cand_ev, None, {})
    else:
        cfg = GateSettings(
            tolerance=ctx.settings.train.promote_tolerance,
            retention_tolerance=ctx.settings.train.retention_tolerance,
        )
        passed, checks, reasons = gate(c_evals[key], l_evals[key], cfg)
        head = (
            f"The gate passes: promoting {name} would replace {live.name}."
            if passed
            else f"The gate would refuse {name} against the live model {live.name}:"
        )
        lines = [f"- {reason_in_words(r, ctx)}" for r in reasons]
        verdict = "\n".join([head, *lines, f"(evaluation set {key})"])
        chart = _recall_chart(ctx, info.name, c_evals[key], live.name, l_evals[key])
    attempt = last_attempt(session, info.name)
    if attempt:
        verdict = f"{verdict}\n\n{attempt}"
    text, splits, swaps = card_view(_dataset_card(session, info.manifest), ctx)
    return Comparison(
        info.name,
        live.name if live else None,
        key,
        chart,
        verdict,
        _checks_frame(checks, ctx),
        text,
        splits,
        swaps,
        _details(info),
    )


def _versions(ctx: AppContext) -> list[Any]:
    from training import registry

    with unit_of_work(ctx.engine) as s:
        return registry.list_models(s)


def build(ctx: AppContext) -> ModelsTab:
    with gr.Tab("Models", id="models", elem_id="tab-models", visible=False) as tab:
        with gr.Row():
            name = gr.Dropdown(
                label="Model version (default: the newest candidate)",
                choices=[],
                elem_id="m-name",
                scale=4,
            )
            refresh = gr.Button("Refresh", elem_id="m-refresh", size="sm", scale=0, min_width=120)
        table = gr.Dataframe(
            headers=COLUMNS,
            datatype=["str"] * len(COLUMNS),
            interactive=False,
            elem_id="m-table",
            label="Registered versions (metrics of each one's last evaluation)",
            wrap=True,
            # Long names and set keys get room; the metrics are short numbers.
            column_widths=["17%", "8%", "10%", "10%", "14%", "5%"] + ["7.2%"] * 5,
        )
        with gr.Row():
            chart = gr.Plot(show_label=False, elem_id="m-chart")
            with gr.Column():
                verdict = gr.Textbox(
                    label="The gate on this version",
                    interactive=False,
                    lines=6,
                    elem_id="m-gate",
                )
                with gr.Row():
                    force = gr.Checkbox(
                        label="Force past the gate (admins only)",
                        value=False,
                        visible=False,  # shown to admins when the tab opens
                        elem_id="m-force",
                    )
                    promote_btn = gr.Button(
                        "Promote to live", variant="primary", elem_id="m-promote"
                    )
                    rollback_btn = gr.Button("Roll back live", variant="stop", elem_id="m-rollback")
                result = gr.Textbox(label="Result", interactive=False, elem_id="m-result")
        checks = gr.Dataframe(
            headers=CHECK_COLUMNS,
            datatype=["str"] * len(CHECK_COLUMNS),
            interactive=False,
            label="Gate checks (candidate vs live on the same rows)",
            elem_id="m-checks",
        )
        with gr.Accordion("Dataset card of this version", open=True):
            card = gr.Textbox(show_label=False, interactive=False, lines=5, elem_id="m-card")
            with gr.Row():
                splits = gr.Dataframe(
                    headers=SPLIT_COLUMNS,
                    datatype=["str"] * len(SPLIT_COLUMNS),
                    interactive=False,
                    label="Rows per split",
                    elem_id="m-card-splits",
                )
                swaps = gr.Dataframe(
                    headers=SWAP_COLUMNS,
                    datatype=["str"] * len(SWAP_COLUMNS),
                    interactive=False,
                    label="Learnt character swaps",
                    elem_id="m-swaps",
                    max_height=260,
                )
        with gr.Accordion("Metrics and manifest (JSON)", open=False):
            details = gr.JSON(show_label=False, elem_id="m-details")

    @requires(ctx, *ENGINEERS)
    def list_versions(selected: str | None, request: gr.Request):
        rows = _versions(ctx)
        names = [r.name for r in rows]
        fallback = names[-1] if names else None
        chosen = (
            selected
            if selected in names
            else next((r.name for r in reversed(rows) if r.status == "candidate"), fallback)
        )
        with unit_of_work(ctx.engine) as s:
            view = compare(s, chosen, ctx)
        is_admin = current_user(ctx, request).role.value == "admin"
        return (
            version_table(rows),
            gr.update(choices=names, value=chosen),
            view.chart,
            view.verdict,
            view.checks,
            view.card_text,
            view.card_splits,
            view.swaps,
            view.details,
            gr.update(visible=is_admin),
        )

    @requires(ctx, *ENGINEERS)
    def promote(selected: str | None, forced: bool, request: gr.Request) -> str:
        from training import registry

        user = current_user(ctx, request)
        if not selected:
            raise gr.Error("Choose a model version first.")
        if forced and user.role.value != "admin":
            raise gr.Error("Only admins may force a promotion past the gate.")
        with unit_of_work(ctx.engine) as s:
            res = registry.promote(
                s,
                selected,
                user.username,
                force=bool(forced),
                tolerance=ctx.settings.train.promote_tolerance,
                retention_tolerance=ctx.settings.train.retention_tolerance,
            )
        return res.summary()

    @requires(ctx, *ENGINEERS)
    def rollback(request: gr.Request) -> str:
        from training import registry

        user = current_user(ctx, request)
        with unit_of_work(ctx.engine) as s:
            info = registry.rollback(s, user.username)
        return f"Rolled back: {info.name} is live again."

    outs = [table, name, chart, verdict, checks, card, splits, swaps, details, force]
    for trigger in (tab.select, refresh.click, name.input):
        trigger(
            list_versions,
            inputs=[name],
            outputs=outs,
            api_visibility="private",
            concurrency_limit=4,
        )
    promote_btn.click(
        promote,
        inputs=[name, force],
        outputs=[result],
        concurrency_limit=1,
        api_visibility="private",
    ).then(list_versions, inputs=[name], outputs=outs, api_visibility="private")
    rollback_btn.click(
        rollback, outputs=[result], concurrency_limit=1, api_visibility="private"
    ).then(list_versions, inputs=[name], outputs=outs, api_visibility="private")
    return ModelsTab(tab=tab)
