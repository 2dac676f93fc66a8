"""Models tab (engineers, admins): registered model versions, their metrics, candidate vs live,
promote (through the registry's gate) and rollback. The change is a database fact: every
serving process (this one at once, workers and other servers within seconds) swaps to the new
live version on its next check (`model.loading.live_backend`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from app.context import AppContext
from app.roles import ENGINEERS, current_user, requires
from storage.db import unit_of_work

COLUMNS = ["name", "status", "uri", "adapter", "created", "promoted", "headline metrics"]


@dataclass(frozen=True)
class ModelsTab:
    tab: gr.Tab


def _headline(metrics: dict[str, Any]) -> str:
    flat = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    evals = metrics.get("evals")
    if isinstance(evals, dict):
        for key, ev in list(evals.items())[-1:]:
            if isinstance(ev, dict):
                for k in ("avg_recall", "average_recall", "macro_f1", "unparsable_rate", "ece"):
                    if isinstance(ev.get(k), int | float):
                        flat[f"{key}:{k}"] = ev[k]
    return ", ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in list(flat.items())[:8]
    )


def _versions(ctx: AppContext) -> list[Any]:
    from training import registry

    with unit_of_work(ctx.engine) as s:
        return registry.list_models(s)


def build(ctx: AppContext) -> ModelsTab:
    with gr.Tab("Models", id="models", elem_id="tab-models", visible=False) as tab:
        refresh = gr.Button("Refresh", elem_id="m-refresh")
        table = gr.Dataframe(
            headers=COLUMNS,
            datatype=["str"] * len(COLUMNS),
            interactive=False,
            elem_id="m-table",
            wrap=True,
        )
        with gr.Row():
            name = gr.Dropdown(label="Model version", choices=[], elem_id="m-name")
            force = gr.Checkbox(label="Force (skip the gate; admins only)", value=False)
            promote_btn = gr.Button("Promote to live", variant="primary", elem_id="m-promote")
            rollback_btn = gr.Button("Roll back live", variant="stop", elem_id="m-rollback")
        result = gr.Textbox(label="Result", interactive=False, elem_id="m-result")
        details = gr.JSON(label="Metrics and manifest", elem_id="m-details")

    @requires(ctx, *ENGINEERS)
    def list_versions(selected: str | None, request: gr.Request):
        rows = _versions(ctx)
        frame = pd.DataFrame(
            [
                [
                    r.name,
                    r.status,
                    r.uri,
                    r.adapter_uri or "",
                    r.created_at.strftime("%Y-%m-%d %H:%M"),
                    r.promoted_at.strftime("%Y-%m-%d %H:%M") if r.promoted_at else "",
                    _headline(r.metrics),
                ]
                for r in rows
            ],
            columns=COLUMNS,
        )
        names = [r.name for r in rows]
        fallback = names[-1] if names else None
        chosen = (
            selected
            if selected in names
            else next((r.name for r in reversed(rows) if r.status == "candidate"), fallback)
        )
        info = next((r for r in rows if r.name == chosen), None)
        detail = json.loads(
            json.dumps(
                {"metrics": info.metrics, "manifest": info.manifest} if info else {}, default=str
            )
        )
        return frame, gr.update(choices=names, value=chosen), detail

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

    outs = [table, name, details]
    refresh.click(
        list_versions, inputs=[name], outputs=outs, api_visibility="private", concurrency_limit=4
    )
    name.change(
        list_versions, inputs=[name], outputs=outs, api_visibility="private", concurrency_limit=4
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
