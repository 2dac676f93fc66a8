"""Dashboard tab (engineers, admins): plotly charts over `storage.reports` frames.

Volume over time, decisions by category, model-vs-moderator confusion and per-category
precision/recall, queue backlog and age, moderator throughput and exposure, calibration.
The charts fill when the tab opens (its `select` event) and again on Refresh or when another
model version is chosen. Every chart uses app.charts' template, the policy's category titles,
date axes ranged to the days that hold data, and backlog ages in the unit that fits. Titles,
axes, legends, empty states, the agreement table's headers and the headline are in the reader's
language (`figures(ctx, version, lang)`, app/locales `dashboard.*` and `charts.*`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from app import charts
from app.charts import plain
from app.context import AppContext
from app.i18n import request_lang, translate, ui_text
from app.roles import ENGINEERS, requires
from storage import reports
from storage.db import unit_of_work

__all__ = ["DashboardTab", "build", "figures", "plain"]

CONFUSION_COLUMNS = ("tp", "fn", "fp", "tn")
TABLE_COLUMNS = ("title", "id", "tp", "fp", "fn", "tn", "precision", "recall", "agreement")


def _t(lang: str | None, key: str, **values: object) -> str:
    """A chart's text (dashboard.chart.<key>) in the reader's language."""
    return translate(f"dashboard.chart.{key}", lang, **values)


def _volume(vol: pd.DataFrame, lang: str | None = None) -> go.Figure:
    fig = charts.figure(_t(lang, "volume"), yaxis_title=_t(lang, "per_day"))
    vol = charts.active_days(vol, ["items", "decisions"])
    if vol.empty:
        return charts.no_data(fig, _t(lang, "volume_empty"))
    fig.add_bar(x=vol["day"], y=vol["items"], name=_t(lang, "items_in"))
    fig.add_scatter(
        x=vol["day"], y=vol["decisions"], name=_t(lang, "decisions"), mode="lines+markers"
    )
    return charts.fit_days(fig, list(vol["day"]), lang)


def _by_category(ctx: AppContext, cats: pd.DataFrame, lang: str | None = None) -> go.Figure:
    fig = charts.figure(_t(lang, "by_category"), xaxis_title=_t(lang, "items"))
    if not cats["decisions"].sum():
        return charts.no_data(fig, _t(lang, "no_decisions"))
    # Policy order from the top down (a horizontal bar chart lists its first row at the bottom).
    rows = cats.iloc[::-1]
    fig.add_bar(
        x=rows["decisions"],
        y=charts.category_titles(ctx.policy, rows["category"], lang),
        orientation="h",
        name=_t(lang, "decisions"),
        showlegend=False,
    )
    fig.update_layout(height=60 + 24 * len(rows))
    return fig


def _precision_recall(ctx: AppContext, agree: pd.DataFrame, lang: str | None = None) -> go.Figure:
    fig = charts.figure(_t(lang, "pr"), xaxis=dict(range=[0, 1]))
    judged = agree[(agree["tp"] + agree["fp"] + agree["fn"]) > 0].iloc[::-1]
    if judged.empty:
        return charts.no_data(fig, _t(lang, "no_judged"))
    titles = charts.category_titles(ctx.policy, judged["category"], lang)
    fig.add_bar(x=judged["precision"], y=titles, orientation="h", name=_t(lang, "precision"))
    fig.add_bar(x=judged["recall"], y=titles, orientation="h", name=_t(lang, "recall"))
    fig.update_layout(barmode="group", height=max(260, 80 + 40 * len(judged)))
    return fig


def _confusion(ctx: AppContext, agree: pd.DataFrame, lang: str | None = None) -> go.Figure:
    fig = charts.figure(_t(lang, "confusion"))
    if not agree[["tp", "fp", "fn", "tn"]].to_numpy().sum():
        return charts.no_data(fig, _t(lang, "no_judged"))
    rows = agree.iloc[::-1]
    fig.add_heatmap(
        z=rows[list(CONFUSION_COLUMNS)].to_numpy(),
        x=[_t(lang, c) for c in CONFUSION_COLUMNS],
        y=charts.category_titles(ctx.policy, rows["category"], lang),
        colorscale="Blues",
        texttemplate="%{z}",
        showscale=False,
    )
    fig.update_layout(height=80 + 26 * len(rows))
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(showgrid=False)
    return fig


def _backlog(back: pd.DataFrame, lang: str | None = None) -> go.Figure:
    scale, unit = charts.duration_unit([*back["oldest_h"], *back["median_h"]], lang)
    fig = charts.figure(_t(lang, "backlog"), yaxis_title=_t(lang, "items"))
    if not back["items"].sum():
        return charts.no_data(fig, _t(lang, "backlog_empty"))
    statuses = [charts.status_title(s, lang) for s in back["status"]]
    fig.add_bar(x=statuses, y=back["items"], name=_t(lang, "items"), text=back["items"])
    for col, name, symbol in (
        ("oldest_h", "oldest_age", "diamond"),
        ("median_h", "median_age", "circle"),
    ):
        pairs = zip(back[col], back["items"], strict=True)
        ages = [round(h / scale, 1) if n else None for h, n in pairs]
        fig.add_scatter(
            x=statuses,
            y=ages,
            name=_t(lang, name, unit=unit),
            yaxis="y2",
            mode="markers",
            marker=dict(size=12, symbol=symbol),
        )
    fig.update_layout(
        yaxis2=dict(
            overlaying="y", side="right", title=_t(lang, "age", unit=unit), rangemode="tozero"
        ),
    )
    return fig


def _throughput(thr: pd.DataFrame, lang: str | None = None) -> go.Figure:
    # The legend names the moderators, even when there is only one.
    fig = charts.figure(_t(lang, "throughput"), barmode="stack", showlegend=True)
    if thr.empty:
        return charts.no_data(fig, _t(lang, "throughput_empty"))
    for name, sub in thr.groupby("reviewer"):
        fig.add_bar(x=sub["day"], y=sub["decisions"], name=plain(name))
    return charts.fit_days(fig, list(thr["day"]), lang)


def _exposure(exp: pd.DataFrame, lang: str | None = None) -> go.Figure:
    fig = charts.figure(_t(lang, "exposure"))
    if exp.empty:
        return charts.no_data(fig, _t(lang, "exposure_empty"))
    names = [plain(n) for n in exp["reviewer"]]
    fig.add_bar(x=names, y=exp["reveals"], name=_t(lang, "reveals"))
    fig.add_bar(x=names, y=exp["decisions"], name=_t(lang, "decisions"))
    fig.update_layout(barmode="group")
    return fig


def _accept_rate(acc: pd.DataFrame, lang: str | None = None) -> go.Figure:
    """Per reviewer: the share of decisions that took the model's suggestion with the accept key
    (a high share may mean anchoring; see WARDEN_UI__PREFILL_MODEL_FLAGS)."""
    fig = charts.figure(_t(lang, "accept"), yaxis=dict(range=[0, 1], tickformat=".0%"))
    if acc.empty:
        return charts.no_data(fig, _t(lang, "accept_empty"))
    fig.add_bar(
        x=[plain(n) for n in acc["reviewer"]],
        y=acc["accept_rate"],
        text=[
            _t(lang, "accepted_of", accepted=a, decisions=n)
            for a, n in zip(acc["accepted"], acc["decisions"], strict=True)
        ],
        name=_t(lang, "accept_rate"),
    )
    return fig


def _calibration(cal: pd.DataFrame, lang: str | None = None) -> go.Figure:
    ece = reports.expected_calibration_error(cal)
    title = _t(lang, "calibration_ece", ece=f"{ece:.3f}") if ece == ece else _t(lang, "calibration")
    fig = charts.figure(
        title,
        xaxis=dict(title=_t(lang, "model_score"), range=[0, 1]),
        yaxis=dict(title=_t(lang, "confirmed"), range=[0, 1]),
    )
    if cal.empty:
        return charts.no_data(fig, _t(lang, "no_judged"))
    fig.add_scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        name=_t(lang, "perfect"),
        line=dict(dash="dash", color="#9ca3af"),
    )
    fig.add_scatter(
        x=cal["mean_score"],
        y=cal["observed"],
        mode="lines+markers",
        name=_t(lang, "model"),
        text=[f"n={n}" for n in cal["count"]],
    )
    return fig


def _agreement_table(ctx: AppContext, agree: pd.DataFrame, lang: str | None = None) -> pd.DataFrame:
    table = agree.copy()
    for col in ("precision", "recall", "agreement"):
        table[col] = table[col].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    table.insert(0, "title", charts.category_titles(ctx.policy, agree["category"], lang))
    table = table.rename(columns={"category": "id"})
    table = table.rename(
        columns={c: translate(f"dashboard.columns.{c}", lang) for c in TABLE_COLUMNS}
    )
    return table.astype(str)


def headline(
    vol: pd.DataFrame, back: pd.DataFrame, model_version: str | None, lang: str | None = None
) -> str:
    """One line a shift lead reads first: what waits, how old, what was decided."""

    def t(key: str, **values: object) -> str:
        return translate(f"dashboard.summary.{key}", lang, **values)

    n_open = int(back["items"].sum())
    if n_open:
        oldest = float(back.loc[back["items"] > 0, "oldest_h"].max())
        scale, unit = charts.duration_unit([oldest], lang)
        key = "open_one" if n_open == 1 else "open_many"
        waiting = t(key, n=n_open, age=f"{oldest / scale:.1f}", unit=unit)
    else:
        waiting = t("no_open")
    today = vol.iloc[-1] if not vol.empty else None  # volume_over_time ends today (UTC)
    decided = (
        t(
            "today",
            items=int(today["items"]),
            decided=int(today["decisions"]),
            week=int(vol["decisions"].tail(7).sum()),
        )
        if today is not None
        else t("no_volume")
    )
    model = t("model", version=plain(model_version)) if model_version else t("no_model")
    return t("line", waiting=waiting, decided=decided, model=model)


def figures(
    ctx: AppContext, model_version: str | None, lang: str | None = None
) -> dict[str, object]:
    """Every chart, the agreement table and the headline, in `lang` (None: English); category
    titles come from `ctx.policy` (pass `policy.in_language(lang)`)."""
    with unit_of_work(ctx.engine) as s:
        vol = reports.volume_over_time(s)
        cats = reports.decisions_by_category(s, ctx.policy)
        agree = reports.agreement(s, ctx.policy, model_version=model_version)
        back = reports.backlog(s)
        thr = reports.throughput(s)
        exp = reports.exposure(s)
        cal = reports.calibration(s, ctx.policy, model_version=model_version)
    return {
        "volume": _volume(vol, lang),
        "by_cat": _by_category(ctx, cats, lang),
        "pr": _precision_recall(ctx, agree, lang),
        "conf": _confusion(ctx, agree, lang),
        "backlog": _backlog(back, lang),
        "through": _throughput(thr, lang),
        "exposure": _exposure(exp, lang),
        "calib": _calibration(cal, lang),
        "table": _agreement_table(ctx, agree, lang),
        "summary": headline(vol, back, model_version, lang),
    }


@dataclass(frozen=True)
class DashboardTab:
    tab: gr.Tab


def build(ctx: AppContext) -> DashboardTab:
    with gr.Tab(
        ui_text("tabs.dashboard"), id="dashboard", elem_id="tab-dashboard", visible=False
    ) as tab:
        with gr.Row():
            version = gr.Dropdown(
                label=ui_text("dashboard.version"),
                choices=[],
                allow_custom_value=False,
                elem_id="db-version",
                scale=4,
            )
            refresh = gr.Button(
                ui_text("dashboard.refresh"),
                elem_id="db-refresh",
                size="sm",
                scale=0,
                min_width=120,
            )
        summary = gr.Textbox(show_label=False, interactive=False, elem_id="db-summary")
        with gr.Row():
            volume = gr.Plot(show_label=False, elem_id="db-volume")
            backlog = gr.Plot(show_label=False, elem_id="db-backlog")
        with gr.Row():
            by_cat = gr.Plot(show_label=False, elem_id="db-by-category")
            pr = gr.Plot(show_label=False, elem_id="db-precision-recall")
        with gr.Row():
            conf = gr.Plot(show_label=False, elem_id="db-confusion")
            calib = gr.Plot(show_label=False, elem_id="db-calibration")
        table = gr.Dataframe(
            datatype="str",
            interactive=False,
            label=ui_text("dashboard.agreement"),
            elem_id="db-agreement",
        )
        with gr.Row():
            through = gr.Plot(show_label=False, elem_id="db-throughput")
            exposure = gr.Plot(show_label=False, elem_id="db-exposure")

    @requires(ctx, *ENGINEERS)
    def refresh_all(selected: str | None, request: gr.Request):
        with unit_of_work(ctx.engine) as s:
            versions = reports.model_versions(s)
        chosen = selected if selected in versions else (versions[0] if versions else None)
        # Text in the reader's language; category names from the policy's translations.
        lang = request_lang(request)
        shown = replace(ctx, policy=ctx.policy.in_language(lang))
        f = figures(shown, chosen, lang)
        return (
            gr.update(choices=versions, value=chosen),
            f["volume"],
            f["by_cat"],
            f["pr"],
            f["conf"],
            f["table"],
            f["backlog"],
            f["calib"],
            f["through"],
            f["exposure"],
            f["summary"],
        )

    outputs = [version, volume, by_cat, pr, conf, table, backlog, calib, through, exposure]
    outputs.append(summary)
    for trigger in (tab.select, refresh.click, version.input):
        trigger(
            refresh_all,
            inputs=[version],
            outputs=outputs,
            concurrency_limit=4,
            api_visibility="private",
        )

    # The accept rate per reviewer (Review tab's accept key), refreshed with the rest.
    with tab:
        accept = gr.Plot(show_label=False, elem_id="db-accept-rate")

    @requires(ctx, *ENGINEERS)
    def refresh_accept(request: gr.Request) -> go.Figure:
        with unit_of_work(ctx.engine) as s:
            return _accept_rate(reports.accept_rate(s), request_lang(request))

    for trigger in (tab.select, refresh.click):
        trigger(refresh_accept, outputs=[accept], concurrency_limit=4, api_visibility="private")
    return DashboardTab(tab=tab)
