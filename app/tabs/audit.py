"""Audit tab (admins): the audit trail (logins, claims, reveals, decisions, model changes) as
readable rows (time, actor, action, item, a short detail); selecting a row shows the event's
full JSON below the table. All text is plain (Dataframe datatype "str", gr.JSON): inert. The
headers are in the reader's language (app/locales `audit.columns`); actions and details are
data, shown as recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from app.context import AppContext
from app.i18n import request_lang, translate, ui_text
from app.roles import ADMINS, requires
from storage.audit import get_audit_event, list_audit
from storage.db import unit_of_work
from storage.models import AuditEvent

COLUMN_KEYS = ["id", "time", "actor", "action", "item", "detail"]


def columns(lang: str | None = None) -> list[str]:
    """The table's headers in `lang`."""
    return [translate(f"audit.columns.{k}", lang) for k in COLUMN_KEYS]


COLUMNS = columns()
COLUMN_WIDTHS = ["5%", "17%", "12%", "15%", "6%", "45%"]
DETAIL_CHARS = 120


@dataclass(frozen=True)
class AuditTab:
    tab: gr.Tab


def short_detail(details: dict[str, Any] | None, limit: int = DETAIL_CHARS) -> str:
    """`key: value` pairs on one line, cut to `limit` characters (the full JSON is one click
    away)."""
    parts = []
    for key, value in (details or {}).items():
        if value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{key}: {' '.join(str(text).split())}")
    line = " · ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def event_row(e: AuditEvent) -> list[str]:
    return [
        str(e.id),
        e.at.strftime("%Y-%m-%d %H:%M:%S"),
        e.actor,
        e.action,
        "" if e.item_id is None else str(e.item_id),
        short_detail(e.details),
    ]


def event_json(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at.isoformat(),
        "actor": e.actor,
        "action": e.action,
        "item_id": e.item_id,
        "details": json.loads(json.dumps(e.details or {}, default=str)),
    }


def _item_id(value: Any, lang: str | None = None) -> int | None:
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        n = int(float(text))
    except ValueError:
        raise gr.Error(translate("audit.bad_item", lang)) from None
    if n <= 0:
        raise gr.Error(translate("audit.bad_item", lang))
    return n


def build(ctx: AppContext) -> AuditTab:
    with gr.Tab(ui_text("tabs.audit"), id="audit", elem_id="tab-audit", visible=False) as tab:
        with gr.Row():
            search = gr.Textbox(label=ui_text("audit.search"), max_lines=1, elem_id="a-search")
            actor = gr.Textbox(label=ui_text("audit.actor"), max_lines=1, elem_id="a-actor")
            action = gr.Textbox(label=ui_text("audit.action"), max_lines=1, elem_id="a-action")
            # A textbox, not a Number: an empty filter stays empty and a typed id stays put.
            item = gr.Textbox(label=ui_text("audit.item"), max_lines=1, elem_id="a-item")
            limit = gr.Number(
                label=ui_text("audit.rows"),
                value=200,
                precision=0,
                minimum=1,
                maximum=5000,
                elem_id="a-limit",
            )
        go = gr.Button(ui_text("audit.go"), variant="primary", elem_id="a-go")
        table = gr.Dataframe(
            headers=COLUMNS,
            datatype=["str"] * len(COLUMNS),
            interactive=False,
            elem_id="a-table",
            wrap=True,
            column_widths=COLUMN_WIDTHS,
            label=ui_text("audit.table"),
        )
        full = gr.JSON(label=ui_text("audit.selected"), elem_id="a-json", value=None)

    @requires(ctx, *ADMINS)
    def find(
        q: str, who: str, what: str, item_id: Any, n: float | None, request: gr.Request
    ) -> pd.DataFrame:
        lang = request_lang(request)
        wanted = _item_id(item_id, lang)
        with unit_of_work(ctx.engine) as s:
            events = list_audit(
                s,
                limit=max(1, min(int(n or 200), 5000)),
                actor=(who or "").strip() or None,
                action=(what or "").strip() or None,
                item_id=wanted,
                search=(q or "").strip() or None,
            )
            rows = [event_row(e) for e in events]
        return pd.DataFrame(rows, columns=columns(lang))

    @requires(ctx, *ADMINS)
    def expand(evt: gr.SelectData, request: gr.Request) -> dict[str, Any] | None:
        row = evt.row_value or []
        try:
            event_id = int(str(row[0]))
        except (IndexError, TypeError, ValueError):
            return None
        with unit_of_work(ctx.engine) as s:
            e = get_audit_event(s, event_id)
            return None if e is None else event_json(e)

    for trigger in (go.click, search.submit, actor.submit, action.submit, item.submit):
        trigger(
            find,
            inputs=[search, actor, action, item, limit],
            outputs=[table],
            concurrency_limit=4,
            api_visibility="private",
        )
    table.select(expand, outputs=[full], concurrency_limit=4, api_visibility="private")
    return AuditTab(tab=tab)
