"""Models tab (engineers, admins): every registered model version with its headline metrics,
the chosen candidate against the live model per category, what the gate says about promoting
it (its reasons in words and every check with its numbers), the candidate's dataset card, and
promote (through the registry's gate) / rollback. The tab fills when it opens.

The change is a database fact: every serving process (this one at once, workers and other
servers within seconds) swaps to the new live version on its next check
(`model.loading.live_backend`). Names, reasons and learnt swaps are data: they reach the page
only through plain-text components (Textbox, Dataframe "str", JSON) and `charts.plain`. Column
headers, chart text, check names and the dataset card's lines are in the reader's language
(`lang`, app/locales `models.*`); the gate's reasons keep training.gate's words with the
policy's category titles.

    rows = version_table(registry.list_models(session))   # what the table shows
    view = compare(session, "v7", ctx)                      # chart, gate, card for one version
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import charts
from app.context import AppContext
from app.i18n import request_lang, translate, ui_text
from app.roles import ENGINEERS, current_user, requires
from storage.db import unit_of_work

COLUMN_KEYS = [
    "name",
    "status",
    "created",
    "promoted",
    "evaluated_on",
    "rows",
    "average_recall",
    "adversarial_recall",
    "ece",
    "retention",
    "benign_flag_rate",
]
CHECK_KEYS = ["check", "candidate", "live", "change", "allowed", "lower_bound", "rows", "result"]
SPLIT_KEYS = ["split", "images", "sft_rows"]
SWAP_KEYS = ["intended", "read_as", "probability"]
SPLITS = ("train", "validation", "golden")
STATUSES = ("candidate", "live", "retired", "rolled_back")


def _t(lang: str | None, key: str, **values: object) -> str:
    return translate(f"models.{key}", lang, **values)


def columns(group: str, keys: list[str], lang: str | None = None) -> list[str]:
    """A table's headers in `lang` (models.<group>.<key>)."""
    return [_t(lang, f"{group}.{k}") for k in keys]


COLUMNS = columns("columns", COLUMN_KEYS)
CHECK_COLUMNS = columns("check_columns", CHECK_KEYS)
SPLIT_COLUMNS = columns("split_columns", SPLIT_KEYS)
SWAP_COLUMNS = columns("swap_columns", SWAP_KEYS)


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


def version_table(rows: list[Any], lang: str | None = None) -> pd.DataFrame:
    """One row per registered version with the headline numbers of its last evaluation."""
    out = []
    for r in rows:
        key, ev = latest_eval(r.metrics)
        out.append(
            [
                r.name,
                _t(lang, f"statuses.{r.status}") if r.status in STATUSES else r.status,
                r.created_at.strftime("%Y-%m-%d %H:%M"),
                r.promoted_at.strftime("%Y-%m-%d %H:%M") if r.promoted_at else "",
                key or _t(lang, "not_evaluated"),
                str(ev.get("n", "")) if ev else "",
                _num(ev.get("average_recall")),
                _num(ev.get("adversarial_recall")),
                _num(ev.get("ece")),
                _num(ev.get("retention")),
                _num(ev.get("benign_flag_rate")),
            ]
        )
    return pd.DataFrame(out, columns=columns("columns", COLUMN_KEYS, lang)).astype(str)


CHECK_NAMES = ("average_recall", "retention", "benign_flag_rate", "retention_benign_flag_rate")


def check_title(name: str, ctx: AppContext, lang: str | None = None) -> str:
    """A gate line's name (`recall[scam_fraud]`) in words."""
    if "[" in name and name.endswith("]"):
        kind, cat = name[:-1].split("[", 1)
        title = charts.category_title(ctx.policy, cat, lang)
        return _t(
            lang, "check.recall" if kind == "recall" else "check.retention_recall", title=title
        )
    return _t(lang, f"check.{name}") if name in CHECK_NAMES else charts.plain(name)


def reason_in_words(reason: str, ctx: AppContext, lang: str | None = None) -> str:
    """A gate reason with its leading category id (`scam_fraud recall drops ...`) as the
    policy's title ("Scams and fraud recall drops ...")."""
    head, _, rest = reason.partition(" recall")
    if rest and head in {*ctx.policy.ids, "safe"}:
        return f"{charts.category_title(ctx.policy, head, lang)} recall{rest}"
    return reason


# The gate's reasons that belong to no check line, by how they start (training.gate).
OTHER_REASONS = (
    ("the candidate's evaluation has no per-row", "no_per_row"),
    ("the live's evaluation has no per-row", "no_per_row"),
    ("candidate and live were evaluated on different rows", "different_rows"),
    ("the evaluation rows carry no category", "no_category"),
    ("no retention rows in the evaluation", "no_retention"),
    ("no harmless rows on the retention set", "no_harmless_retention"),
    ("no harmless rows", "no_harmless"),
)


def _check_reason(c: Any, ctx: AppContext, lang: str | None, confidence: float) -> str:
    """A failed check line as the gate's reason, in `lang`."""
    values: dict[str, Any] = {
        "cand": _num(c.candidate),
        "live": _num(c.live),
        "delta": f"{c.delta:+.3f}" if c.delta is not None else "",
        "drop": f"{-c.delta:.3f}" if c.delta is not None else "",
        "bound": f"{c.bound:+.3f}" if c.bound is not None else "",
        "limit": f"{c.limit:.3f}",
        "n": c.n,
        "confidence": f"{confidence:.0%}",
    }
    if "[" in c.name and c.name.endswith("]"):
        kind, cat = c.name[:-1].split("[", 1)
        key = "recall" if kind == "recall" else "retention_recall"
        values["title"] = charts.category_title(ctx.policy, cat, lang)
    else:
        key = c.name
    if key == "average_recall":
        values["limit"] = f"{c.limit:+.3f}"
    return _t(lang, f"gate_reason.{key}", **values)


def reasons_in_words(
    reasons: list[str], checks: list[Any], ctx: AppContext, lang: str | None, confidence: float
) -> list[str]:
    """The gate's reasons for a reader: in English as training.gate words them (category ids
    as the policy's titles); in another language rebuilt from the failed check lines (each
    failed check gives one reason, in order) and the known reasons without a check. A reason
    this does not know stays as the gate wrote it."""
    if (lang or "en") == "en":
        return [reason_in_words(r, ctx, lang) for r in reasons]
    failed = iter([c for c in checks if not c.passed])
    out = []
    for reason in reasons:
        other = next((key for start, key in OTHER_REASONS if reason.startswith(start)), None)
        if other is not None:
            out.append(_t(lang, f"gate_reason.{other}"))
            continue
        check = next(failed, None)
        out.append(
            reason_in_words(reason, ctx, lang)
            if check is None or check.name.split("[")[0] not in (*CHECK_NAMES, "recall")
            else _check_reason(check, ctx, lang, confidence)
        )
    return out


def _checks_frame(checks: list[Any], ctx: AppContext, lang: str | None = None) -> pd.DataFrame:
    rows = [
        [
            check_title(c.name, ctx, lang),
            _num(c.candidate),
            _num(c.live),
            f"{c.delta:+.3f}" if c.delta is not None else "",
            _num(c.limit),
            f"{c.bound:+.3f}" if c.bound is not None else "",
            "" if c.n is None else str(c.n),
            _t(lang, "pass") if c.passed else _t(lang, "fail"),
        ]
        for c in checks
    ]
    return pd.DataFrame(rows, columns=columns("check_columns", CHECK_KEYS, lang)).astype(str)


def _recall_chart(
    ctx: AppContext,
    name: str,
    cand: dict[str, Any],
    live_name: str | None,
    live: dict[str, Any],
    lang: str | None = None,
) -> go.Figure:
    """Candidate vs live recall per category on one evaluation set (horizontal bars)."""
    title = _t(lang, "chart.recall_vs_live") if live else _t(lang, "chart.recall_title")
    fig = charts.figure(
        title, xaxis=dict(range=[0, 1], title=_t(lang, "chart.recall")), barmode="group"
    )
    cats = [
        c
        for c in [*ctx.policy.ids, "safe"]
        if (cand.get("per_category") or {}).get(c, {}).get("recall") is not None
        or (live.get("per_category") or {}).get(c, {}).get("recall") is not None
    ][::-1]
    if not cats:
        return charts.no_data(fig, _t(lang, "chart.no_eval"))
    titles = charts.category_titles(ctx.policy, cats, lang)
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
    card: dict[str, Any] | None, ctx: AppContext, lang: str | None = None
) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """(summary text, counts per split, learnt swaps) of a dataset card, all plain text."""
    split_columns = columns("split_columns", SPLIT_KEYS, lang)
    swap_columns = columns("swap_columns", SWAP_KEYS, lang)
    empty_splits = pd.DataFrame([], columns=split_columns)
    empty_swaps = pd.DataFrame([], columns=swap_columns)
    if not card:
        return _t(lang, "card_text.none"), empty_splits, empty_swaps
    counts = card.get("counts") or {}
    items, sft = counts.get("items") or {}, counts.get("sft") or {}
    splits = pd.DataFrame(
        [
            [_t(lang, f"splits_names.{s}"), str(items.get(s, 0)), str(sft.get(s, "-"))]
            for s in SPLITS
        ],
        columns=split_columns,
    )
    classes = counts.get("classes_train") or {}
    class_text = ", ".join(
        f"{charts.category_title(ctx.policy, str(c), lang)} {n}"
        for c, n in sorted(classes.items(), key=lambda kv: -int(kv[1] or 0))
    )
    lines = [
        _t(
            lang,
            "card_text.dataset",
            name=card.get("name", "?"),
            hash=str(card.get("data_hash", ""))[:16],
            built=card.get("built_at", "?"),
            policy=card.get("policy_version", "?"),
        ),
        _t(
            lang,
            "card_text.golden",
            golden=items.get("golden", 0),
            retention=counts.get("retention", 0),
        ),
        _t(
            lang,
            "card_text.pairs",
            preference=counts.get("preference", 0),
            replay=counts.get("replay", 0),
            hard=counts.get("hard", 0),
        ),
    ]
    if class_text:
        lines.append(_t(lang, "card_text.classes", classes=class_text))
    reading = card.get("reading")
    subs = (reading or {}).get("substitutions") or []
    if reading:
        lines.append(
            _t(
                lang,
                "card_text.swaps",
                n=len(subs),
                items=reading.get("affected_items", 0),
                words=reading.get("aligned_words", 0),
                lexicon=reading.get("lexicon_words", 0),
            )
        )
    else:
        lines.append(_t(lang, "card_text.no_swaps"))
    swaps = pd.DataFrame(
        [
            [str(s.get("intended", "")), str(s.get("observed", "")), _num(s.get("p"), 2)]
            for s in subs
        ],  # fmt: skip
        columns=swap_columns,
    )
    return "\n".join(lines), splits, swaps.astype(str)


def last_attempt(session: Session, name: str, lang: str | None = None) -> str | None:
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
    outcome = _t(
        lang, "attempt.refused" if ev.action == "model.promote_refused" else "attempt.promoted"
    )
    if (ev.details or {}).get("forced"):
        why = ev.details.get("force_reason") or _t(lang, "attempt.no_reason")
        outcome = _t(lang, "attempt.forced", reason=why)
    reasons = "; ".join(str(r) for r in (ev.details or {}).get("reasons") or [])
    when = ev.at.strftime("%Y-%m-%d %H:%M")
    key = "attempt.reasons" if reasons else "attempt.plain"
    return _t(lang, key, outcome=outcome, actor=ev.actor, when=when, reasons=reasons)


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


def compare(
    session: Session, name: str | None, ctx: AppContext, lang: str | None = None
) -> Comparison:
    """Version `name` against the live model: chart, the gate's verdict and checks, its card,
    in `lang` (None: English; category titles from `ctx.policy`)."""
    from training import registry
    from training.gate import GateSettings, gate

    rows = registry.list_models(session)
    info = next((r for r in rows if r.name == name), None)
    live = next((r for r in rows if r.status == registry.LIVE), None)
    if info is None:
        text, splits, swaps = card_view(None, ctx, lang)
        return Comparison(
            None,
            live.name if live else None,
            None,
            charts.no_data(
                charts.figure(_t(lang, "chart.recall_title")), _t(lang, "chart.no_version")
            ),
            _t(lang, "verdict.none"),
            _checks_frame([], ctx, lang),
            text,
            splits,
            swaps,
        )
    c_evals = info.metrics.get("evals") or {}
    l_evals = (live.metrics.get("evals") or {}) if live and live is not info else {}
    key = registry._common_eval(info, live) if live and live is not info else None  # type: ignore[arg-type]
    checks: list[Any] = []
    if info.status == registry.LIVE:
        verdict = _t(lang, "verdict.live", name=name)
        key, cand_ev = latest_eval(info.metrics)
        chart = _recall_chart(ctx, info.name, cand_ev, None, {}, lang)
    elif live is None:
        verdict = _t(lang, "verdict.first", name=name)
        key, cand_ev = latest_eval(info.metrics)
        chart = _recall_chart(ctx, info.name, cand_ev, None, {}, lang)
    elif key is None or key not in c_evals or key not in l_evals:
        verdict = _t(lang, "verdict.no_common", name=name, live=live.name)
        key, cand_ev = latest_eval(info.metrics)
        chart = _recall_chart(ctx, info.name, cand_ev, None, {}, lang)
    else:
        cfg = GateSettings(
            tolerance=ctx.settings.train.promote_tolerance,
            retention_tolerance=ctx.settings.train.retention_tolerance,
        )
        passed, checks, reasons = gate(c_evals[key], l_evals[key], cfg)
        head = _t(
            lang, "verdict.passes" if passed else "verdict.refuses", name=name, live=live.name
        )
        said = reasons_in_words(reasons, checks, ctx, lang, cfg.confidence)
        lines = [f"- {r}" for r in said]
        verdict = "\n".join([head, *lines, _t(lang, "verdict.eval_set", eval_set=key)])
        chart = _recall_chart(ctx, info.name, c_evals[key], live.name, l_evals[key], lang)
    attempt = last_attempt(session, info.name, lang)
    if attempt:
        verdict = f"{verdict}\n\n{attempt}"
    text, splits, swaps = card_view(_dataset_card(session, info.manifest), ctx, lang)
    return Comparison(
        info.name,
        live.name if live else None,
        key,
        chart,
        verdict,
        _checks_frame(checks, ctx, lang),
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
    with gr.Tab(ui_text("tabs.models"), id="models", elem_id="tab-models", visible=False) as tab:
        with gr.Row():
            name = gr.Dropdown(
                label=ui_text("models.version"),
                choices=[],
                elem_id="m-name",
                scale=4,
            )
            refresh = gr.Button(
                ui_text("models.refresh"), elem_id="m-refresh", size="sm", scale=0, min_width=120
            )
        table = gr.Dataframe(
            headers=COLUMNS,
            datatype=["str"] * len(COLUMNS),
            interactive=False,
            elem_id="m-table",
            label=ui_text("models.table"),
            wrap=True,
            # Long names and set keys get room; the metrics are short numbers.
            column_widths=["17%", "8%", "10%", "10%", "14%", "5%"] + ["7.2%"] * 5,
        )
        with gr.Row():
            chart = gr.Plot(show_label=False, elem_id="m-chart")
            with gr.Column():
                verdict = gr.Textbox(
                    label=ui_text("models.gate"),
                    interactive=False,
                    lines=6,
                    elem_id="m-gate",
                )
                with gr.Row():
                    force = gr.Checkbox(
                        label=ui_text("models.force"),
                        value=False,
                        visible=False,  # shown to admins when the tab opens
                        elem_id="m-force",
                    )
                    promote_btn = gr.Button(
                        ui_text("models.promote"), variant="primary", elem_id="m-promote"
                    )
                    rollback_btn = gr.Button(
                        ui_text("models.rollback"), variant="stop", elem_id="m-rollback"
                    )
                result = gr.Textbox(
                    label=ui_text("models.result"), interactive=False, elem_id="m-result"
                )
        checks = gr.Dataframe(
            headers=CHECK_COLUMNS,
            datatype=["str"] * len(CHECK_COLUMNS),
            interactive=False,
            label=ui_text("models.checks"),
            elem_id="m-checks",
        )
        with gr.Accordion(ui_text("models.card"), open=True):
            card = gr.Textbox(show_label=False, interactive=False, lines=5, elem_id="m-card")
            with gr.Row():
                splits = gr.Dataframe(
                    headers=SPLIT_COLUMNS,
                    datatype=["str"] * len(SPLIT_COLUMNS),
                    interactive=False,
                    label=ui_text("models.splits"),
                    elem_id="m-card-splits",
                )
                swaps = gr.Dataframe(
                    headers=SWAP_COLUMNS,
                    datatype=["str"] * len(SWAP_COLUMNS),
                    interactive=False,
                    label=ui_text("models.swaps"),
                    elem_id="m-swaps",
                    max_height=260,
                )
        with gr.Accordion(ui_text("models.details"), open=False):
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
        # Text in the reader's language; category names from the policy's translations.
        lang = request_lang(request)
        shown = replace(ctx, policy=ctx.policy.in_language(lang))
        with unit_of_work(ctx.engine) as s:
            view = compare(s, chosen, shown, lang)
        is_admin = current_user(ctx, request).role.value == "admin"
        return (
            version_table(rows, lang),
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
        lang = request_lang(request)
        if not selected:
            raise gr.Error(_t(lang, "msg.choose"))
        if forced and user.role.value != "admin":
            raise gr.Error(_t(lang, "msg.admins_force"))
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
        return _t(request_lang(request), "msg.rolled_back", name=info.name)

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
