"""Audit tab (admins): search the audit trail (logins, reveals, decisions, model changes)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from app.context import AppContext
from app.roles import ADMINS, requires
from storage.audit import list_audit
from storage.db import unit_of_work

COLUMNS = ["id", "at (UTC)", "actor", "action", "item", "details"]


@dataclass(frozen=True)
class AuditTab:
    tab: gr.Tab


def build(ctx: AppContext) -> AuditTab:
    with gr.Tab("Audit", id="audit", elem_id="tab-audit", visible=False) as tab:
        with gr.Row():
            search = gr.Textbox(label="Actor or action contains", max_lines=1, elem_id="a-search")
            actor = gr.Textbox(label="Actor (exact)", max_lines=1)
            action = gr.Textbox(label="Action (exact)", max_lines=1)
            item = gr.Number(label="Item id", precision=0, value=None)
            limit = gr.Number(label="Rows", value=200, precision=0, minimum=1, maximum=5000)
        go = gr.Button("Search", variant="primary", elem_id="a-go")
        table = gr.Dataframe(
            headers=COLUMNS,
            datatype=["str"] * len(COLUMNS),
            interactive=False,
            elem_id="a-table",
            wrap=True,
        )

    @requires(ctx, *ADMINS)
    def find(
        q: str, who: str, what: str, item_id: float | None, n: float | None, request: gr.Request
    ) -> pd.DataFrame:
        with unit_of_work(ctx.engine) as s:
            events = list_audit(
                s,
                limit=max(1, min(int(n or 200), 5000)),
                actor=(who or "").strip() or None,
                action=(what or "").strip() or None,
                item_id=int(item_id) if item_id else None,
                search=(q or "").strip() or None,
            )
            rows = [
                [
                    str(e.id),
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.actor,
                    e.action,
                    "" if e.item_id is None else str(e.item_id),
                    json.dumps(e.details or {}, default=str, ensure_ascii=False)[:500],
                ]
                for e in events
            ]
        return pd.DataFrame(rows, columns=COLUMNS)

    go.click(
        find,
        inputs=[search, actor, action, item, limit],
        outputs=[table],
        concurrency_limit=4,
        api_visibility="private",
    )
    return AuditTab(tab=tab)
