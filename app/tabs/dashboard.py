"""Dashboard tab (engineers, admins): plotly charts over `storage.reports` frames.

Volume over time, decisions by category, model-vs-moderator confusion and per-category
precision/recall, queue backlog and age, moderator throughput and exposure, calibration.
The charts fill when the tab opens (its `select` event) and again on Refresh or when another
model version is chosen. Every chart uses app.charts' template, the policy's category titles,
date axes ranged to the days that hold data, and backlog ages in the unit that fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from app import charts
from app.charts import plain
from app.context import AppContext
from app.roles import ENGINEERS, requires
from storage import reports
from storage.db import unit_of_work

__all__ = ["DashboardTab", "build", "figures", "plain"]

CONFUSION_COLUMNS = {
    "tp": "flagged, violation",
    "fn": "missed violation",
    "fp": "flagged, harmless",
    "tn": "not flagged, harmless",
}


def _volume(vol: pd.DataFrame) -> go.Figure:
    fig = charts.figure("Items in and decisions per day", yaxis_title="per day")
    vol = charts.active_days(vol, ["items", "decisions"])
    if vol.empty:
        return charts.no_data(fig, "No items or decisions in the last 30 days")
    fig.add_bar(x=vol["day"], y=vol["items"], name="items in")
    fig.add_scatter(x=vol["day"], y=vol["decisions"], name="decisions", mode="lines+markers")
    return charts.fit_days(fig, list(vol["day"]))


def _by_category(ctx: AppContext, cats: pd.DataFrame) -> go.Figure:
    fig = charts.figure("Current decisions by category", xaxis_title="items")
    if not cats["decisions"].sum():
        return charts.no_data(fig, "No decisions yet")
    # Policy order from the top down (a horizontal bar chart lists its first row at the bottom).
    rows = cats.iloc[::-1]
    fig.add_bar(
        x=rows["decisions"],
        y=charts.category_titles(ctx.policy, rows["category"]),
        orientation="h",
        name="decisions",
        showlegend=False,
    )
    fig.update_layout(height=60 + 24 * len(rows))
    return fig


def _precision_recall(ctx: AppContext, agree: pd.DataFrame) -> go.Figure:
    fig = charts.figure("Model precision and recall vs moderators", xaxis=dict(range=[0, 1]))
    judged = agree[(agree["tp"] + agree["fp"] + agree["fn"]) > 0].iloc[::-1]
    if judged.empty:
        return charts.no_data(fig, "No item has both a model score and a moderator decision yet")
    titles = charts.category_titles(ctx.policy, judged["category"])
    fig.add_bar(x=judged["precision"], y=titles, orientation="h", name="precision")
    fig.add_bar(x=judged["recall"], y=titles, orientation="h", name="recall")
    fig.update_layout(barmode="group", height=max(260, 80 + 40 * len(judged)))
    return fig


def _confusion(ctx: AppContext, agree: pd.DataFrame) -> go.Figure:
    fig = charts.figure("Model flag vs moderator decision, per category")
    if not agree[["tp", "fp", "fn", "tn"]].to_numpy().sum():
        return charts.no_data(fig, "No item has both a model score and a moderator decision yet")
    rows = agree.iloc[::-1]
    fig.add_heatmap(
        z=rows[list(CONFUSION_COLUMNS)].to_numpy(),
        x=list(CONFUSION_COLUMNS.values()),
        y=charts.category_titles(ctx.policy, rows["category"]),
        colorscale="Blues",
        texttemplate="%{z}",
        showscale=False,
    )
    fig.update_layout(height=80 + 26 * len(rows))
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(showgrid=False)
    return fig


def _backlog(back: pd.DataFrame) -> go.Figure:
    scale, unit = charts.duration_unit([*back["oldest_h"], *back["median_h"]])
    fig = charts.figure("Open items and their age", yaxis_title="items")
    if not back["items"].sum():
        return charts.no_data(fig, "Nothing is waiting: the queue is empty")
    statuses = [charts.status_title(s) for s in back["status"]]
    fig.add_bar(x=statuses, y=back["items"], name="items", text=back["items"])
    for col, name, symbol in (("oldest_h", "oldest", "diamond"), ("median_h", "median", "circle")):
        pairs = zip(back[col], back["items"], strict=True)
        ages = [round(h / scale, 1) if n else None for h, n in pairs]
        fig.add_scatter(
            x=statuses,
            y=ages,
            name=f"{name} age ({unit})",
            yaxis="y2",
            mode="markers",
            marker=dict(size=12, symbol=symbol),
        )
    fig.update_layout(
        yaxis2=dict(overlaying="y", side="right", title=f"age ({unit})", rangemode="tozero"),
    )
    return fig


def _throughput(thr: pd.DataFrame) -> go.Figure:
    # The legend names the moderators, even when there is only one.
    fig = charts.figure("Decisions per moderator per day", barmode="stack", showlegend=True)
    if thr.empty:
        return charts.no_data(fig, "No moderator decisions in the last 14 days")
    for name, sub in thr.groupby("reviewer"):
        fig.add_bar(x=sub["day"], y=sub["decisions"], name=plain(name))
    return charts.fit_days(fig, list(thr["day"]))


def _exposure(exp: pd.DataFrame) -> go.Figure:
    fig = charts.figure("Exposure: reveals of blurred images vs decisions (30 days)")
    if exp.empty:
        return charts.no_data(fig, "No moderator decisions or reveals in the last 30 days")
    names = [plain(n) for n in exp["reviewer"]]
    fig.add_bar(x=names, y=exp["reveals"], name="reveals")
    fig.add_bar(x=names, y=exp["decisions"], name="decisions")
    fig.update_layout(barmode="group")
    return fig


def _accept_rate(acc: pd.DataFrame) -> go.Figure:
    """Per reviewer: the share of decisions that took the model's suggestion with the accept key
    (a high share may mean anchoring; see WARDEN_UI__PREFILL_MODEL_FLAGS)."""
    fig = charts.figure(
        "Accepted the model's suggestion, share of decisions (30 days)",
        yaxis=dict(range=[0, 1], tickformat=".0%"),
    )
    if acc.empty:
        return charts.no_data(fig, "No reviewer decisions in the last 30 days")
    fig.add_bar(
        x=[plain(n) for n in acc["reviewer"]],
        y=acc["accept_rate"],
        text=[f"{a} of {n}" for a, n in zip(acc["accepted"], acc["decisions"], strict=True)],
        name="accept rate",
    )
    return fig


def _calibration(cal: pd.DataFrame) -> go.Figure:
    ece = reports.expected_calibration_error(cal)
    title = f"Calibration (ECE {ece:.3f})" if ece == ece else "Calibration"
    fig = charts.figure(
        title,
        xaxis=dict(title="model score", range=[0, 1]),
        yaxis=dict(title="share moderators confirmed", range=[0, 1]),
    )
    if cal.empty:
        return charts.no_data(fig, "No item has both a model score and a moderator decision yet")
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="perfect", line=dict(dash="dash", color="#9ca3af")
    )
    fig.add_scatter(
        x=cal["mean_score"],
        y=cal["observed"],
        mode="lines+markers",
        name="model",
        text=[f"n={n}" for n in cal["count"]],
    )
    return fig


def _agreement_table(ctx: AppContext, agree: pd.DataFrame) -> pd.DataFrame:
    table = agree.copy()
    for col in ("precision", "recall", "agreement"):
        table[col] = table[col].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    table.insert(0, "title", charts.category_titles(ctx.policy, agree["category"]))
    table = table.rename(columns={"category": "id"})
    return table.astype(str)


def headline(vol: pd.DataFrame, back: pd.DataFrame, model_version: str | None) -> str:
    """One line a shift lead reads first: what waits, how old, what was decided."""
    n_open = int(back["items"].sum())
    if n_open:
        oldest = float(back.loc[back["items"] > 0, "oldest_h"].max())
        scale, unit = charts.duration_unit([oldest])
        waiting = f"{n_open} open item{'s' * (n_open != 1)}, the oldest waiting "
        waiting += f"{oldest / scale:.1f} {unit}"
    else:
        waiting = "No open items"
    today = vol.iloc[-1] if not vol.empty else None  # volume_over_time ends today (UTC)
    decided = (
        f"today {int(today['items'])} in, {int(today['decisions'])} decided; "
        f"last 7 days {int(vol['decisions'].tail(7).sum())} decided"
        if today is not None
        else "no volume yet"
    )
    model = f"model {plain(model_version)}" if model_version else "no model predictions yet"
    return f"{waiting}. {decided[:1].upper()}{decided[1:]}. Scores compared: {model}."


def figures(ctx: AppContext, model_version: str | None) -> dict[str, object]:
    with unit_of_work(ctx.engine) as s:
        vol = reports.volume_over_time(s)
        cats = reports.decisions_by_category(s, ctx.policy)
        agree = reports.agreement(s, ctx.policy, model_version=model_version)
        back = reports.backlog(s)
        thr = reports.throughput(s)
        exp = reports.exposure(s)
        cal = reports.calibration(s, ctx.policy, model_version=model_version)
    return {
        "volume": _volume(vol),
        "by_cat": _by_category(ctx, cats),
        "pr": _precision_recall(ctx, agree),
        "conf": _confusion(ctx, agree),
        "backlog": _backlog(back),
        "through": _throughput(thr),
        "exposure": _exposure(exp),
        "calib": _calibration(cal),
        "table": _agreement_table(ctx, agree),
        "summary": headline(vol, back, model_version),
    }


@dataclass(frozen=True)
class DashboardTab:
    tab: gr.Tab


def build(ctx: AppContext) -> DashboardTab:
    with gr.Tab("Dashboard", id="dashboard", elem_id="tab-dashboard", visible=False) as tab:
        with gr.Row():
            version = gr.Dropdown(
                label="Model version (default: newest with predictions)",
                choices=[],
                allow_custom_value=False,
                elem_id="db-version",
                scale=4,
            )
            refresh = gr.Button("Refresh", elem_id="db-refresh", size="sm", scale=0, min_width=120)
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
            label="Agreement per category",
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
        f = figures(ctx, chosen)
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
            return _accept_rate(reports.accept_rate(s))

    for trigger in (tab.select, refresh.click):
        trigger(refresh_accept, outputs=[accept], concurrency_limit=4, api_visibility="private")
    return DashboardTab(tab=tab)
