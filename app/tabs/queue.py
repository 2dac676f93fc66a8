"""Queue tab: the working list. Filter (status, model flags, source, age, priority, who holds
it), sort and page in SQL (storage.items.list_queue_page); saved views (my items, escalated,
older than the SLA, `WARDEN_UI__REVIEW_SLA_H`); a click on a row, or Enter on a selected row,
claims that item under a lease and opens it in Review (`connect_review`).

Everyone may read the queue and release the items they hold; bulk actions are admin-only and
write one decision per item (source=bulk) on every item matching the filters. Admins and
engineers may overrule one decided or escalated item: a new decision, recorded as an overrule.
Tables use Dataframe datatype "str" (text inert).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import gradio as gr
import pandas as pd

from app.context import AppContext
from app.i18n import category_text, request_lang, translate, ui_text
from app.roles import ADMINS, ENGINEERS, EVERYONE, REVIEWERS, current_user, inert, requires
from storage import queue as queue_repo
from storage import review
from storage.db import unit_of_work
from storage.domain import ItemStatus
from storage.errors import WardenError
from storage.items import (
    OPEN_ITEM_STATUSES,
    ItemView,
    QueueQuery,
    list_queue_page,
    queue_item_ids,
)
from storage.models import utcnow

log = logging.getLogger(__name__)

COLUMNS = [
    "item",
    "status",
    "priority",
    "age",
    "source",
    "file",
    "model flags",
    "top score",
    "decision",
    "held by",
]
# Percent widths that fit 1366 px without sideways scrolling; long text is cut (MAX_CHARS).
COLUMN_WIDTHS = ["5%", "9%", "7%", "7%", "9%", "15%", "14%", "7%", "14%", "13%"]
MAX_CHARS = 40
STATUS_ANY = "any"
STATUS_OPEN = "open"
MAX_BULK = 5000
PAGE_SIZES = [25, 50, 100, 200]
HELD_CHOICES = ["any", "me", "nobody", "someone"]
SORTS = ["priority", "created", "item", "status", "source", "held_by"]
VIEW_ALL = "All items"
VIEW_MINE = "My items"
VIEW_ESCALATED = "Escalated"
VIEW_SLA = "Older than SLA"
VIEWS = [VIEW_ALL, VIEW_MINE, VIEW_ESCALATED, VIEW_SLA]


@dataclass(frozen=True)
class QueueTab:
    tab: gr.Tab
    bulk_box: gr.Group
    table: gr.Dataframe
    info: gr.Textbox
    overrule_item: gr.Textbox


def _age(created: datetime, now: datetime, sla_h: float) -> str:
    if created.tzinfo is None:
        created = created.replace(tzinfo=now.tzinfo)
    hours = max((now - created).total_seconds(), 0) / 3600
    text = (
        f"{hours * 60:.0f} min"
        if hours < 1
        else (f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} d")
    )
    return f"{text} !" if hours >= sla_h else text


def rows_frame(
    items: list[ItemView], *, now: datetime | None = None, sla_h: float = 24.0
) -> pd.DataFrame:
    """Plain-text cells (the Dataframe's datatype is "str": filenames stay inert)."""
    now = now or utcnow()
    data = []
    for v in items:
        p, d = v.prediction, v.decision
        live = v.lease_holder and v.lease_expires_at and _aware(v.lease_expires_at, now) > now
        data.append(
            [
                str(v.item_id),
                v.status.value.replace("_", " "),
                str(v.priority),
                _age(v.created_at, now, sla_h),
                v.source or "",
                v.filename or "",
                "not scored" if p is None else (", ".join(p.flagged) or "safe"),
                "" if p is None else f"{p.max_score:.2f}",
                ""
                if d is None
                else f"{', '.join(d.categories) or 'safe'} ({d.reviewer or d.source.value})",
                v.lease_holder if live else "",
            ]
        )
    return pd.DataFrame(data, columns=COLUMNS)


def _aware(value: datetime, now: datetime) -> datetime:
    return value.replace(tzinfo=now.tzinfo) if value.tzinfo is None else value


def build(ctx: AppContext) -> QueueTab:
    policy = ctx.policy
    limit_c = ctx.settings.ui.concurrency_limit
    sla_h = ctx.settings.ui.review_sla_h
    view_keys = ("all", "mine", "escalated", "sla")
    views = [(ui_text(f"queue.views.{k}"), v) for k, v in zip(view_keys, VIEWS, strict=True)]
    sorts = [(ui_text(f"queue.sorts.{s}"), s) for s in SORTS]
    held_choices = [(ui_text(f"queue.held_choices.{h}"), h) for h in HELD_CHOICES]
    statuses = [STATUS_ANY, STATUS_OPEN, *[s.value for s in ItemStatus]]
    category_choices = [(category_text(c.id), c.id) for c in policy.categories]
    with gr.Tab(ui_text("tabs.queue"), id="queue", elem_id="tab-queue") as tab:
        with gr.Row(equal_height=True):
            view = gr.Radio(
                views, value=VIEW_ALL, label=ui_text("queue.views.label"), elem_id="q-view", scale=4
            )
            sort = gr.Dropdown(
                sorts, value="priority", label=ui_text("queue.sort"), elem_id="q-sort", scale=1
            )
            descending = gr.Checkbox(
                value=True, label=ui_text("queue.descending"), elem_id="q-desc", scale=1
            )
            limit = gr.Dropdown(
                PAGE_SIZES, value=50, label=ui_text("queue.page_size"), elem_id="q-limit", scale=1
            )
        with gr.Row(equal_height=True):
            status = gr.Dropdown(
                [(ui_text(f"status.{s}"), s) for s in statuses],
                value=STATUS_ANY,
                label=ui_text("queue.status"),
                elem_id="q-status",
                min_width=120,
            )
            categories = gr.Dropdown(
                category_choices,
                multiselect=True,
                label=ui_text("queue.flags_any"),
                elem_id="q-cats",
                min_width=160,
            )
            source = gr.Textbox(
                label=ui_text("queue.source"), max_lines=1, elem_id="q-source", min_width=120
            )
            # Textboxes, not Numbers: an empty filter must stay empty (a Number shows 0).
            older_h = gr.Textbox(
                label=ui_text("queue.older_than"),
                placeholder=ui_text("queue.any_age"),
                max_lines=1,
                elem_id="q-older",
                min_width=110,
            )
            min_priority = gr.Textbox(
                label=ui_text("queue.priority_at_least"),
                placeholder=ui_text("queue.any"),
                max_lines=1,
                elem_id="q-prio",
                min_width=110,
            )
            held = gr.Dropdown(
                held_choices,
                value="any",
                label=ui_text("queue.held_by"),
                elem_id="q-held",
                min_width=130,
            )
        with gr.Accordion(ui_text("queue.score_filters"), open=False):
            with gr.Row():
                min_score = gr.Slider(0, 1, value=0, step=0.01, label=ui_text("queue.min_score"))
                max_score = gr.Slider(0, 1, value=1, step=0.01, label=ui_text("queue.max_score"))
                disagreement = gr.Checkbox(label=ui_text("queue.disagree"), value=False)
        with gr.Row(equal_height=True):
            search_btn = gr.Button(
                ui_text("queue.search"), variant="primary", elem_id="q-search", size="sm", scale=1
            )
            # One line for the result and the paging, so the table starts higher at 768 px.
            info = gr.Textbox(
                show_label=False,
                container=False,
                interactive=False,
                elem_id="q-info",
                placeholder=ui_text("queue.info"),
                scale=3,
            )
            prev_btn = gr.Button(ui_text("queue.previous"), elem_id="q-prev", size="sm", scale=1)
            next_btn = gr.Button(ui_text("queue.next"), elem_id="q-next", size="sm", scale=1)
            release_btn = gr.Button(
                ui_text("queue.release"), elem_id="q-release", size="sm", scale=1
            )
        table = gr.Dataframe(
            headers=COLUMNS,
            datatype=["str"] * len(COLUMNS),
            interactive=False,
            elem_id="q-table",
            wrap=True,
            column_widths=COLUMN_WIDTHS,
            max_chars=MAX_CHARS,
            max_height=640,
            label=ui_text("queue.table"),
            show_label=True,
        )
        offset = gr.State(0)
        with gr.Group(visible=False) as bulk_box:
            gr.Markdown(ui_text("queue.bulk.title"))
            with gr.Row():
                bulk_cats = gr.CheckboxGroup(
                    category_choices,
                    label=ui_text("queue.bulk.categories"),
                    elem_id="q-bulk-cats",
                )
                bulk_note = gr.Textbox(
                    label=ui_text("queue.bulk.note"), max_lines=2, elem_id="q-bulk-note"
                )
            preview_btn = gr.Button(ui_text("queue.bulk.prepare"), elem_id="q-bulk-prepare")
            confirm_text = gr.Textbox(
                label=ui_text("queue.bulk.confirm_label"),
                interactive=False,
                elem_id="q-bulk-summary",
            )
            confirm_btn = gr.Button(
                ui_text("queue.bulk.confirm"),
                variant="stop",
                visible=False,
                elem_id="q-bulk-confirm",
            )
            plan = gr.Textbox(visible="hidden", elem_id="q-bulk-plan")
        with gr.Group(visible=False) as overrule_box:
            gr.Markdown(ui_text("queue.overrule.title"))
            with gr.Row():
                ov_item = gr.Textbox(
                    label=ui_text("queue.overrule.item"), max_lines=1, elem_id="q-ov-item"
                )
                ov_cats = gr.CheckboxGroup(
                    category_choices,
                    label=ui_text("queue.bulk.categories"),
                    elem_id="q-ov-cats",
                )
                ov_note = gr.Textbox(
                    label=ui_text("queue.overrule.reason"), max_lines=2, elem_id="q-ov-note"
                )
            ov_btn = gr.Button(ui_text("queue.overrule.go"), variant="stop", elem_id="q-ov-go")

    filter_inputs = [
        status,
        categories,
        source,
        older_h,
        min_priority,
        held,
        min_score,
        max_score,
        disagreement,
        sort,
        descending,
    ]

    def _filters(username, st, cats, src, older, prio, hd, lo, hi, dis, srt, desc):
        """(QueueQuery, sort, descending) from the filter controls' values."""
        if st in (None, "", STATUS_ANY):
            statuses: tuple[str, ...] = ()
        elif st == STATUS_OPEN:
            statuses = OPEN_ITEM_STATUSES
        else:
            statuses = (str(st),)
        try:
            hours = float(older) if str(older or "").strip() else None
            priority = int(str(prio).strip()) if str(prio or "").strip() else None
        except (TypeError, ValueError):
            raise gr.Error("Age and priority filters take numbers.") from None
        if hours is not None and not 0 <= hours < 1e6:
            raise gr.Error("Older than (hours): a number of hours, 0 or more.")
        query = QueueQuery(
            statuses=statuses,
            categories=tuple(cats or ()),
            source=(src or "").strip() or None,
            created_before=utcnow() - timedelta(hours=hours) if hours else None,
            min_priority=priority,
            held=hd or "any",
            held_by_me=username,
            min_score=float(lo) if lo else None,
            max_score=float(hi) if hi is not None and hi < 1 else None,
            disagreement_only=bool(dis),
        )
        return query, srt or "priority", bool(desc)

    def _page(username: str, values: tuple, page_size: Any, start: int, lang: str = "en"):
        query, srt, desc = _filters(username, *values)
        size = int(page_size or 50)
        if size not in PAGE_SIZES:
            raise gr.Error(f"Rows a page: one of {', '.join(map(str, PAGE_SIZES))}.")
        start = max(int(start or 0), 0)
        with unit_of_work(ctx.engine) as s:
            page = list_queue_page(s, query, sort=srt, descending=desc, limit=size, offset=start)
        n = len(page.items)
        if start == 0 and not page.has_more:
            text = translate("queue.count", lang, n=n)
        elif n == 0:
            text = translate("queue.no_more", lang)
        else:
            more = translate("queue.more", lang) if page.has_more else ""
            text = translate("queue.range", lang, first=start + 1, last=start + n, more=more)
        frame = rows_frame(page.items, sla_h=sla_h)
        # Headers in the reader's language (the cells are data: ids, statuses, file names).
        frame.columns = [translate(f"queue.columns.{c.replace(' ', '_')}", lang) for c in COLUMNS]
        return frame, text, start

    @requires(ctx, *EVERYONE)
    def search(st, cats, src, older, prio, hd, lo, hi, dis, srt, desc, size, request: gr.Request):
        user = current_user(ctx, request)
        values = (st, cats, src, older, prio, hd, lo, hi, dis, srt, desc)
        return _page(user.username, values, size, 0, request_lang(request))

    @requires(ctx, *EVERYONE)
    def next_page(
        st, cats, src, older, prio, hd, lo, hi, dis, srt, desc, size, start, request: gr.Request
    ):
        user = current_user(ctx, request)
        values = (st, cats, src, older, prio, hd, lo, hi, dis, srt, desc)
        after = int(start or 0) + int(size or 50)
        return _page(user.username, values, size, after, request_lang(request))

    @requires(ctx, *EVERYONE)
    def prev_page(
        st, cats, src, older, prio, hd, lo, hi, dis, srt, desc, size, start, request: gr.Request
    ):
        user = current_user(ctx, request)
        values = (st, cats, src, older, prio, hd, lo, hi, dis, srt, desc)
        before = max(int(start or 0) - int(size or 50), 0)
        return _page(user.username, values, size, before, request_lang(request))

    def choose_view(name: str):
        """A saved view sets the filters (then the search runs)."""
        reset = [STATUS_ANY, [], "", "", "", "any", "priority", True]
        if name == VIEW_MINE:
            reset[5] = "me"
        elif name == VIEW_ESCALATED:
            reset[0] = ItemStatus.escalated.value
        elif name == VIEW_SLA:
            reset[0], reset[3], reset[6], reset[7] = STATUS_OPEN, f"{sla_h:g}", "created", False
        return reset

    @requires(ctx, *EVERYONE)
    def release_mine(request: gr.Request) -> str:
        user = current_user(ctx, request)
        with unit_of_work(ctx.engine) as s:
            n = review.release_all(s, user.username)
        return f"Released {n} items"

    @requires(ctx, *ADMINS)
    def prepare(
        st, cats, src, older, prio, hd, lo, hi, dis, srt, desc, labels, note, request: gr.Request
    ):
        user = current_user(ctx, request)
        query, srt, desc = _filters(
            user.username, st, cats, src, older, prio, hd, lo, hi, dis, srt, desc
        )
        with unit_of_work(ctx.engine) as s:
            ids = queue_item_ids(s, query, sort=srt, descending=desc, limit=MAX_BULK)
        labels = policy.validate_labels(list(labels or []))
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

    page_outputs = [table, info, offset]
    for trigger in (search_btn.click, source.submit, older_h.submit, min_priority.submit):
        trigger(
            search,
            inputs=[*filter_inputs, limit],
            outputs=page_outputs,
            concurrency_limit=limit_c,
            api_visibility="private",
        )
    for btn, fn in ((next_btn, next_page), (prev_btn, prev_page)):
        btn.click(
            fn,
            inputs=[*filter_inputs, limit, offset],
            outputs=page_outputs,
            concurrency_limit=limit_c,
            api_visibility="private",
        )
    view.input(
        choose_view,
        inputs=[view],
        outputs=[status, categories, source, older_h, min_priority, held, sort, descending],
        api_visibility="private",
        queue=False,
    ).then(
        search,
        inputs=[*filter_inputs, limit],
        outputs=page_outputs,
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
    ).then(
        search,
        inputs=[*filter_inputs, limit],
        outputs=page_outputs,
        api_visibility="private",
    )
    ov_btn.click(
        overrule,
        inputs=[ov_item, ov_cats, ov_note],
        outputs=[info],
        concurrency_limit=1,
        api_visibility="private",
    )
    tab.select(show_overrule, outputs=[overrule_box], api_visibility="private")
    return QueueTab(tab=tab, bulk_box=bulk_box, table=table, info=info, overrule_item=ov_item)


def connect_review(ctx: AppContext, queue_tab: QueueTab, review_tab: Any, tabs: gr.Tabs) -> None:
    """Opening a queue row: claim that item under a lease for this user (storage rules), switch
    to the Review tab and show it there (`review_tab.show_item`, the tab's own loader, which
    keeps a held item current). Refusals are one-line messages; nothing switches."""
    lease_s = ctx.settings.queue.lease_s
    item_box = review_tab.load_inputs[0]
    show_item = getattr(review_tab, "show_item", None)
    if show_item is None:  # a Review tab without the hook: rows cannot open there
        log.warning("the Review tab has no show_item hook; queue rows will not open in Review")
        return

    @requires(ctx, *REVIEWERS)
    def open_row(evt: gr.SelectData, request: gr.Request):
        user = current_user(ctx, request)
        row = evt.row_value or []
        try:
            item_id = int(str(row[0]).strip())
        except (IndexError, TypeError, ValueError):
            raise gr.Error("Pick a row with an item id.") from None
        with unit_of_work(ctx.engine) as s:
            status = queue_repo.require_item(s, item_id).status
            closed = status in (ItemStatus.decided.value, ItemStatus.escalated.value)
            if closed and user.role in ENGINEERS:
                # Admins and engineers change a closed item by overrule: fill in its id there.
                message = f"Item {item_id} is {status}: overrule it below (its id is filled in)"
                return gr.update(), gr.update(), message, str(item_id), False
        try:
            with unit_of_work(ctx.engine) as s:
                queue_repo.claim_item(s, item_id, user.username, lease_s=lease_s)
        except WardenError as exc:
            # Shown in place (and as a toast); the queue stays, nothing changes hands.
            refusal = inert(f"Not opened: {exc}")
            gr.Warning(refusal)
            return gr.update(), gr.update(), refusal, gr.update(), False
        message = f"Item {item_id} opened in Review"
        return gr.Tabs(selected="review"), str(item_id), message, gr.update(), True

    def show_if_opened(
        opened: bool, shown: str, grey_on: bool, stream: str, request: gr.Request
    ) -> list[Any]:
        if not opened:
            return [gr.update()] * len(review_tab.load_outputs)
        return show_item(shown, grey_on, stream, request)

    opened = gr.State(False)
    queue_tab.table.select(
        open_row,
        outputs=[tabs, item_box, queue_tab.info, queue_tab.overrule_item, opened],
        concurrency_limit=ctx.settings.ui.concurrency_limit,
        api_visibility="private",
    ).success(
        show_if_opened,
        inputs=[opened, *review_tab.load_inputs],
        outputs=review_tab.load_outputs,
        api_visibility="private",
    )
