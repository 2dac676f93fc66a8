"""Queue tab: filter and sort items; admins apply bulk decisions after a confirmation step.

Everyone may read the queue and release the items they hold; bulk actions are admin-only and
write one decision per item (source=bulk). Admins and engineers may overrule one decided or
escalated item: a new decision, recorded as an overrule. Tables use Dataframe datatype "str"
(text inert).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from app.context import AppContext
from app.roles import ADMINS, ENGINEERS, EVERYONE, current_user, requires
from storage import review
from storage.db import unit_of_work
from storage.domain import ItemStatus

COLUMNS = [
    "item",
    "status",
    "source",
    "file",
    "priority",
    "created",
    "max score",
    "model flags",
    "decision",
    "reviewer",
    "held by",
]
STATUS_ANY = "any"
MAX_BULK = 5000


@dataclass(frozen=True)
class QueueTab:
    tab: gr.Tab
    bulk_box: gr.Group


def rows_frame(rows: list[review.QueueRow]) -> pd.DataFrame:
    data = [
        [
            str(r.item_id),
            r.status,
            r.source or "",
            r.filename or "",
            str(r.priority),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            "" if r.max_score is None else f"{r.max_score:.3f}",
            ", ".join(r.flagged) if r.max_score is not None else "not scored",
            "" if r.decision is None else (", ".join(r.decision) or "safe"),
            r.reviewer or "",
            r.lease_holder or "",
        ]
        for r in rows
    ]
    return pd.DataFrame(data, columns=COLUMNS)


def build(ctx: AppContext) -> QueueTab:
    policy = ctx.policy
    limit_c = ctx.settings.ui.concurrency_limit
    with gr.Tab("Queue", id="queue", elem_id="tab-queue") as tab:
        with gr.Row():
            status = gr.Dropdown(
                [STATUS_ANY, *[s.value for s in ItemStatus]],
                value=STATUS_ANY,
                label="Status",
                elem_id="q-status",
            )
            categories = gr.Dropdown(
                [(c.title, c.id) for c in policy.categories],
                multiselect=True,
                label="Model flags any of",
                elem_id="q-cats",
            )
            source = gr.Textbox(label="Source", max_lines=1, elem_id="q-source")
        with gr.Row():
            min_score = gr.Slider(0, 1, value=0, step=0.01, label="Min top score")
            max_score = gr.Slider(0, 1, value=1, step=0.01, label="Max top score")
            disagreement = gr.Checkbox(label="Model vs moderator disagree", value=False)
            limit = gr.Number(value=200, precision=0, minimum=1, maximum=MAX_BULK, label="Rows")
        with gr.Row():
            search_btn = gr.Button("Search", variant="primary", elem_id="q-search")
            release_btn = gr.Button("Release the items I hold", elem_id="q-release")
        table = gr.Dataframe(
            headers=COLUMNS,
            datatype=["str"] * len(COLUMNS),
            interactive=False,
            elem_id="q-table",
            wrap=True,
        )
        info = gr.Textbox(label="Result", interactive=False, elem_id="q-info")
        with gr.Group(visible=False) as bulk_box:
            gr.Markdown("**Bulk decision** (admins) on every item listed above")
            with gr.Row():
                bulk_cats = gr.CheckboxGroup(
                    [(c.title, c.id) for c in policy.categories],
                    label="Categories (none = safe)",
                    elem_id="q-bulk-cats",
                )
                bulk_note = gr.Textbox(label="Note", max_lines=2, elem_id="q-bulk-note")
            preview_btn = gr.Button("Prepare bulk decision", elem_id="q-bulk-prepare")
            confirm_text = gr.Textbox(label="Confirm", interactive=False, elem_id="q-bulk-summary")
            confirm_btn = gr.Button(
                "Confirm bulk decision", variant="stop", visible=False, elem_id="q-bulk-confirm"
            )
            plan = gr.Textbox(visible="hidden", elem_id="q-bulk-plan")
        with gr.Group(visible=False) as overrule_box:
            gr.Markdown(
                "**Overrule** (admins, engineers) a decided or escalated item: a new decision "
                "that supersedes the current one, recorded as an overrule"
            )
            with gr.Row():
                ov_item = gr.Textbox(label="Item id", max_lines=1, elem_id="q-ov-item")
                ov_cats = gr.CheckboxGroup(
                    [(c.title, c.id) for c in policy.categories],
                    label="Categories (none = safe)",
                    elem_id="q-ov-cats",
                )
                ov_note = gr.Textbox(label="Reason", max_lines=2, elem_id="q-ov-note")
            ov_btn = gr.Button("Overrule", variant="stop", elem_id="q-ov-go")

    filter_inputs = [status, categories, source, min_score, max_score, disagreement, limit]

    def _query(st, cats, src, lo, hi, dis, lim) -> list[review.QueueRow]:
        with unit_of_work(ctx.engine) as s:
            return review.list_queue(
                s,
                status=None if st in (None, STATUS_ANY) else st,
                categories=tuple(cats or ()),
                source=(src or "").strip() or None,
                min_score=float(lo) if lo else None,
                max_score=float(hi) if hi is not None and hi < 1 else None,
                disagreement_only=bool(dis),
                limit=max(1, min(int(lim or 200), MAX_BULK)),
            )

    @requires(ctx, *EVERYONE)
    def search(st, cats, src, lo, hi, dis, lim, request: gr.Request):
        rows = _query(st, cats, src, lo, hi, dis, lim)
        return rows_frame(rows), f"{len(rows)} items"

    @requires(ctx, *EVERYONE)
    def release_mine(request: gr.Request) -> str:
        user = current_user(ctx, request)
        with unit_of_work(ctx.engine) as s:
            n = review.release_all(s, user.username)
        return f"Released {n} items"

    @requires(ctx, *ADMINS)
    def prepare(st, cats, src, lo, hi, dis, lim, labels, note, request: gr.Request):
        rows = _query(st, cats, src, lo, hi, dis, lim)
        labels = policy.validate_labels(list(labels or []))
        ids = [r.item_id for r in rows]
        if not ids:
            return "No items match the filters.", gr.update(visible=False), ""
        what = ", ".join(labels) or "safe"
        summary = (
            f"Record '{what}' on {len(ids)} items (ids {ids[0]}…{ids[-1]})? "
            "Each gets its own decision (source bulk). Press Confirm."
        )
        body = json.dumps({"ids": ids, "labels": labels, "note": (note or "")[:4000]})
        return summary, gr.update(visible=True), body

    @requires(ctx, *ADMINS)
    def confirm(plan_json: str, request: gr.Request):
        user = current_user(ctx, request)
        try:
            p = json.loads(plan_json or "{}")
            ids = [int(i) for i in p.get("ids", [])][:MAX_BULK]
        except (ValueError, TypeError):
            raise gr.Error("The bulk plan is malformed; prepare it again.") from None
        with unit_of_work(ctx.engine) as s:
            out = review.bulk_decide(
                s,
                user.username,
                ids,
                list(p.get("labels") or []),
                note=p.get("note"),
                policy=policy,
            )
        return f"Recorded {len(out)} decisions.", gr.update(visible=False), ""

    @requires(ctx, *ENGINEERS)
    def overrule(item: str, labels: list[str], note: str, request: gr.Request) -> str:
        user = current_user(ctx, request)
        try:
            item_id = int(str(item).strip())
        except ValueError:
            raise gr.Error("Enter the id of a decided or escalated item.") from None
        with unit_of_work(ctx.engine) as s:
            d = review.overrule(
                s,
                user.username,
                item_id,
                list(labels or []),
                note=(note or "")[:4000],
                policy=policy,
            )
        return f"Item {item_id}: overruled as {', '.join(d.categories) or 'safe'} (decision {d.id})"

    def show_overrule(request: gr.Request):
        # Display only: the handler above checks the role whatever the page shows.
        user = ctx.active_user(getattr(request, "username", None))
        return gr.update(visible=user is not None and user.role in ENGINEERS)

    search_btn.click(
        search,
        inputs=filter_inputs,
        outputs=[table, info],
        concurrency_limit=limit_c,
        api_visibility="private",
    )
    release_btn.click(
        release_mine, outputs=[info], concurrency_limit=limit_c, api_visibility="private"
    )
    preview_btn.click(
        prepare,
        inputs=[*filter_inputs, bulk_cats, bulk_note],
        outputs=[confirm_text, confirm_btn, plan],
        concurrency_limit=limit_c,
        api_visibility="private",
    )
    confirm_btn.click(
        confirm,
        inputs=[plan],
        outputs=[confirm_text, confirm_btn, plan],
        concurrency_limit=1,
        api_visibility="private",
    ).then(search, inputs=filter_inputs, outputs=[table, info], api_visibility="private")
    ov_btn.click(
        overrule,
        inputs=[ov_item, ov_cats, ov_note],
        outputs=[info],
        concurrency_limit=1,
        api_visibility="private",
    )
    tab.select(show_overrule, outputs=[overrule_box], api_visibility="private")
    return QueueTab(tab=tab, bulk_box=bulk_box)
