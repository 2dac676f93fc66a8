"""Dashboard tab (engineers, admins): plotly charts over `storage.reports` frames.

Volume over time, decisions by category, model-vs-moderator confusion and per-category
precision/recall, queue backlog and age, moderator throughput and exposure, calibration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from app.context import AppContext
from app.roles import ENGINEERS, requires
from storage import reports
from storage.db import unit_of_work

_MARKUP = re.compile(r"[<>&]")


def plain(label: object) -> str:
    """Plotly understands a few HTML-like tags in labels: strip markup characters."""
    return _MARKUP.sub("", str(label))


def _bar(x, y, title: str, **layout) -> go.Figure:
    fig = go.Figure(go.Bar(x=[plain(v) for v in x], y=list(y)))
    fig.update_layout(title=title, height=320, margin=dict(l=40, r=10, t=40, b=80), **layout)
    return fig


def figures(ctx: AppContext, model_version: str | None) -> dict[str, object]:
    with unit_of_work(ctx.engine) as s:
        vol = reports.volume_over_time(s)
        cats = reports.decisions_by_category(s, ctx.policy)
        agree = reports.agreement(s, ctx.policy, model_version=model_version)
        back = reports.backlog(s)
        thr = reports.throughput(s)
        exp = reports.exposure(s)
        cal = reports.calibration(s, ctx.policy, model_version=model_version)

    volume = go.Figure()
    volume.add_scatter(x=vol["day"], y=vol["items"], name="items in", mode="lines+markers")
    volume.add_scatter(x=vol["day"], y=vol["decisions"], name="decisions", mode="lines+markers")
    volume.update_layout(title="Volume per day", height=320)

    by_cat = _bar(cats["category"], cats["decisions"], "Current decisions by category")

    pr = go.Figure()
    pr.add_bar(x=[plain(c) for c in agree["category"]], y=agree["precision"], name="precision")
    pr.add_bar(x=[plain(c) for c in agree["category"]], y=agree["recall"], name="recall")
    pr.update_layout(
        title="Model precision and recall vs moderators",
        barmode="group",
        height=320,
        yaxis=dict(range=[0, 1]),
    )

    conf = go.Figure(
        go.Heatmap(
            z=agree[["tp", "fn", "fp", "tn"]].to_numpy().T,
            x=[plain(c) for c in agree["category"]],
            y=[
                "model yes, human yes",
                "model no, human yes",
                "model yes, human no",
                "model no, human no",
            ],
            colorscale="Blues",
            texttemplate="%{z}",
        )
    )
    conf.update_layout(title="Confusion per category (model flag vs decision)", height=340)

    backlog = go.Figure()
    backlog.add_bar(x=back["status"], y=back["items"], name="items")
    backlog.add_scatter(
        x=back["status"],
        y=back["oldest_h"],
        name="oldest (h)",
        yaxis="y2",
        mode="markers",
        marker=dict(size=12),
    )
    backlog.update_layout(
        title="Backlog and age",
        height=320,
        yaxis2=dict(overlaying="y", side="right", title="hours"),
    )

    through = go.Figure()
    for name, sub in thr.groupby("reviewer") if not thr.empty else []:
        through.add_bar(x=sub["day"], y=sub["decisions"], name=plain(name))
    through.update_layout(
        title="Moderator throughput (decisions per day)",
        barmode="stack",
        height=320,
        # Whole days: with one day of data plotly would otherwise zoom into milliseconds.
        xaxis=dict(type="date", tickformat="%b %d", dtick=86_400_000),
    )

    exposure = go.Figure()
    exposure.add_bar(x=[plain(n) for n in exp["reviewer"]], y=exp["reveals"], name="reveals")
    exposure.add_bar(x=[plain(n) for n in exp["reviewer"]], y=exp["decisions"], name="decisions")
    exposure.update_layout(
        title="Exposure: reveals vs decisions (30 days)", barmode="group", height=320
    )

    calib = go.Figure()
    calib.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="perfect", line=dict(dash="dash", color="grey")
    )
    calib.add_scatter(
        x=cal["mean_score"],
        y=cal["observed"],
        mode="lines+markers",
        name="model",
        text=[f"n={n}" for n in cal["count"]],
    )
    ece = reports.expected_calibration_error(cal)
    calib.update_layout(
        title=f"Calibration (ECE {ece:.3f})" if ece == ece else "Calibration",
        height=340,
        xaxis_title="mean score",
        yaxis_title="observed rate",
    )

    table = agree.copy()
    for col in ("precision", "recall", "agreement"):
        table[col] = table[col].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    table = table.astype(str)
    return {
        "volume": volume,
        "by_cat": by_cat,
        "pr": pr,
        "conf": conf,
        "backlog": backlog,
        "through": through,
        "exposure": exposure,
        "calib": calib,
        "table": table,
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
            )
            refresh = gr.Button("Refresh", variant="primary", elem_id="db-refresh")
        with gr.Row():
            volume = gr.Plot(label="Volume")
            by_cat = gr.Plot(label="Decisions by category")
        with gr.Row():
            pr = gr.Plot(label="Precision / recall")
            conf = gr.Plot(label="Confusion")
        table = gr.Dataframe(
            datatype="str",
            interactive=False,
            label="Agreement per category",
            elem_id="db-agreement",
        )
        with gr.Row():
            backlog = gr.Plot(label="Backlog")
            calib = gr.Plot(label="Calibration")
        with gr.Row():
            through = gr.Plot(label="Throughput")
            exposure = gr.Plot(label="Exposure")

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
        )

    refresh.click(
        refresh_all,
        inputs=[version],
        outputs=[version, volume, by_cat, pr, conf, table, backlog, calib, through, exposure],
        concurrency_limit=4,
        api_visibility="private",
    )
    return DashboardTab(tab=tab)
