"""Review tab: text first (OCR, posted text, rationale, scores), image blurred until revealed.

Advancing is instant: the browser already holds the prefetched next item (a hidden JSON box)
and shows it with a client-side `js` step; the decision is saved by a chained `.then` that also
prefetches the item after. Keys (see app/static/keys.js): digits toggle categories, Enter
submits, S skips, E escalates, R reveals, U undoes, ? shows the keys.
All item text is untrusted: it goes only into Textbox and Label components (rendered inert).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from sqlalchemy import select

from app.context import AppContext
from app.roles import REVIEWERS, current_user, inert, requires
from storage import review
from storage.db import unit_of_work
from storage.domain import Role
from storage.errors import WardenError
from storage.models import AuditEvent

log = logging.getLogger(__name__)

# Key label for the n-th category checkbox (1-9, 0, then shift+1.. / "-" for the 11th).
KEY_LABELS = [str(i) for i in range(1, 10)] + ["0"] + [f"⇧{i}" for i in range(1, 10)]

EMPTY_QUEUE = "Nothing to review right now."
# Items held ahead of the current one, already in the browser: back-to-back submits stay
# instant while the save of the previous one is still on its way.
PREFETCH = 2


def image_html(url: str | None, blurred: bool) -> str:
    """Markup for the item image; `url` is one of our own signed `/img/...` URLs."""
    if not url:
        return '<div class="wd-noimg">No item</div>'
    state = "blurred" if blurred else "revealed"
    return (
        f'<img id="wd-image" class="wd-img wd-{state}" src="{html.escape(url, quote=True)}" '
        f'alt="item image ({state})" data-state="{state}">'
    )


@dataclass(frozen=True)
class ReviewTab:
    tab: gr.Tab
    # Page-load hook: hands moderators and annotators their first item.
    on_load: Callable[..., list[Any]]
    load_inputs: list[Any]
    load_outputs: list[Any]


def _scores_value(card: review.ReviewCard, ctx: AppContext) -> tuple[Any, dict[str, Any]]:
    """(value for the server to return, the same already postprocessed for the browser js)."""
    titles = {c.id: c.title for c in ctx.policy.categories}
    plain: Any = {titles.get(k, k): float(v) for k, v in card.scores.items()}
    if not card.scored or not plain:
        plain = "not scored" if not card.scored else "no scores"
    data = gr.Label(num_top_classes=len(titles)).postprocess(plain)
    return plain, data.model_dump() if hasattr(data, "model_dump") else dict(data)


def card_payload(
    ctx: AppContext, card: review.ReviewCard, grey: bool, session_id: str
) -> dict[str, Any]:
    """What the browser needs to show one item, as plain JSON (no markup but our own URL).
    The image URL works only with the cookie of session `session_id`."""
    ttl = ctx.settings.ui.image_url_ttl_s
    variant = "blur" if card.blur else "view"
    scores_plain, scores_js = _scores_value(card, ctx)
    meta = " · ".join(
        part
        for part in (
            card.filename or "(no filename)",
            f"source {card.source}" if card.source else "",
            f"priority {card.priority}",
        )
        if part
    )
    if card.scored:
        flagged = ", ".join(card.flagged) if card.flagged else "safe"
        nsfw = f" · NSFW {card.nsfw:.2f}" if card.nsfw is not None else ""
        model = f"Model {card.model_version}: {flagged}{nsfw}"
    else:
        model = "not scored"
    return {
        "id": str(card.item_id),
        "meta": meta,
        "text": card.text or "",
        "ocr": _ocr_shown(card),
        "rationale": card.rationale or ("" if card.scored else "not scored"),
        "model": model,
        "scores": scores_js,
        "scores_plain": scores_plain,
        "img": ctx.signer.image_url(
            card.item_id, variant, session_id=session_id, grey=grey, ttl_s=ttl
        ),
        "blurred": "1" if card.blur else "0",
        "lease": card.lease_expires_at.isoformat() if card.lease_expires_at else "",
    }


def _ocr_shown(card: Any) -> str:
    """The raw OCR text, and below it how the model's reader read it (leetspeak, look-alikes)."""
    if card.ocr_text is None:
        return "" if card.scored else "not scored"
    if card.ocr_read_as:
        return f"{card.ocr_text}\n\n[read by the model as]\n{card.ocr_read_as}"
    return card.ocr_text


def _display(payload: dict[str, Any] | None) -> list[Any]:
    """Values for DISPLAY components, in order (see `build`)."""
    if payload is None:
        # A plain string: gr.Label refuses {"label": ...} without confidences (the save after
        # the last item in the queue failed on it).
        return ["", EMPTY_QUEUE, "", "", "", "", "—", image_html(None, True), "", "0"]
    return [
        payload["id"],
        payload["meta"],
        payload["text"],
        payload["ocr"],
        payload["rationale"],
        payload["model"],
        payload["scores_plain"],
        image_html(payload["img"], payload["blurred"] == "1"),
        payload["lease"],
        payload["blurred"],
    ]


def _exposure_text(exp: review.Exposure) -> str:
    return f"Your exposure: {exp.reveals_today} reveals today, {exp.reveals_total} in total"


# Client-side step: show the prefetched next item at once, stash the submitted action.
# Inputs: next_json, shown_id, categories, note. Outputs: pending + DISPLAY + cats + note.
ADVANCE_JS = """
(nextJson, cur, cats, note) => {
  const pend = JSON.stringify({action: "%s", item_id: cur || null, categories: cats || [],
                               note: note || "", t: Date.now()});
  if (!cur) {
    return [pend, "", "Looking for items…", "", "", "", "", {label: "—"},
            '<div class="wd-noimg">No item</div>', "", "0", cats, note, nextJson];
  }
  // Items acted on in this page: a save still in flight may list them as prefetched.
  const done = (window.__wardenDone = window.__wardenDone || []);
  done.push(String(cur));
  if (done.length > 100) done.shift();
  let list = [];
  try { list = JSON.parse(nextJson || "[]"); } catch (e) { list = []; }
  if (!Array.isArray(list)) list = [];
  const rest = list.filter((x) => x && !done.includes(String(x.id)));
  const n = rest.shift();
  const restJson = JSON.stringify(rest);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;",
      ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  if (!n) {
    return [pend, "", "Loading the next item…", "", "", "", "", {label: "…"},
            '<div class="wd-noimg">Loading…</div>', "", "0", [], "", restJson];
  }
  const st = n.blurred === "1" ? "blurred" : "revealed";
  const img = '<img id="wd-image" class="wd-img wd-' + st + '" src="' + esc(n.img) +
              '" alt="item image (' + st + ')" data-state="' + st + '">';
  return [pend, n.id, n.meta, n.text, n.ocr, n.rationale, n.model, n.scores, img, n.lease,
          n.blurred, [], "", restJson];
}
"""

PRELOAD_JS = """
(nextJson) => {
  try {
    const list = JSON.parse(nextJson || "[]");
    window.__wardenPreload = (Array.isArray(list) ? list : []).map((n) => {
      const img = new Image();
      img.src = n.img;
      return img;
    });
  } catch (e) {}
}
"""

LEASE_JS = """
(exp) => {
  if (!exp) return "";
  const s = Math.round((Date.parse(exp) - Date.now()) / 1000);
  if (!(s > 0)) return "Lease expired: press Next item";
  return "Lease: " + Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s left";
}
"""


def build(ctx: AppContext) -> ReviewTab:
    policy = ctx.policy
    blur_level = ctx.settings.ui.blur_nsfw_threshold
    lease_s = ctx.settings.queue.lease_s
    choices = [
        (f"{KEY_LABELS[i] if i < len(KEY_LABELS) else ''} · {c.title}", c.id)
        for i, c in enumerate(policy.categories)
    ]

    with gr.Tab("Review", id="review", elem_id="tab-review") as tab:
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    item_id = gr.Textbox(
                        label="Item", elem_id="wd-item-id", interactive=False, max_lines=1, scale=1
                    )
                    meta = gr.Textbox(
                        label="File", elem_id="wd-meta", interactive=False, max_lines=2, scale=4
                    )
                ocr = gr.Textbox(
                    label="Text in the image (OCR)",
                    elem_id="wd-ocr",
                    interactive=False,
                    lines=3,
                    max_lines=8,
                )
                text = gr.Textbox(
                    label="Posted text", elem_id="wd-text", interactive=False, lines=2, max_lines=6
                )
                rationale = gr.Textbox(
                    label="Model rationale",
                    elem_id="wd-rationale",
                    interactive=False,
                    lines=2,
                    max_lines=6,
                )
                model_line = gr.Textbox(
                    label="Model", elem_id="wd-model", interactive=False, max_lines=1
                )
                scores = gr.Label(
                    label="Scores per category",
                    elem_id="wd-scores",
                    num_top_classes=len(policy.categories),
                    show_label=True,
                )
            with gr.Column(scale=2):
                image = gr.HTML(image_html(None, True), elem_id="wd-image-box")
                with gr.Row():
                    reveal_btn = gr.Button("Reveal (R)", elem_id="wd-reveal", size="sm")
                    grey = gr.Checkbox(label="Greyscale", value=False, elem_id="wd-grey")
                exposure = gr.Textbox(
                    label="Exposure", elem_id="wd-exposure", interactive=False, max_lines=1
                )
                lease_view = gr.Textbox(
                    label="Lease", elem_id="wd-lease", interactive=False, max_lines=1
                )
        cats = gr.CheckboxGroup(
            choices=choices, label="Categories (none checked = safe)", elem_id="wd-cats"
        )
        note = gr.Textbox(label="Note (Esc leaves the field)", elem_id="wd-note", max_lines=3)
        with gr.Row():
            submit_btn = gr.Button("Submit (Enter)", variant="primary", elem_id="wd-submit")
            skip_btn = gr.Button("Skip (S)", elem_id="wd-skip")
            escalate_btn = gr.Button("Escalate (E)", elem_id="wd-escalate")
            undo_btn = gr.Button("Undo last (U)", elem_id="wd-undo")
            next_btn = gr.Button("Next item", elem_id="wd-next")
            keys_btn = gr.Button("Keys (?)", elem_id="wd-keys")
        status = gr.Textbox(
            label="Last action", elem_id="wd-status", interactive=False, max_lines=2
        )
        gr.Markdown(
            "**Keys** — 1–9, 0: toggle categories 1–10 · Shift+1…, or -: the 11th and on · "
            "Enter: submit (nothing checked = safe) · S: skip · E: escalate · R: reveal image · "
            "U: undo last decision · ?: this help · Esc: leave a text field. "
            "Keys do nothing while a text field has focus.",
            elem_id="wd-keys-help",
        )
        # Client-side state: JSON of the prefetched next item, the pending action, lease expiry.
        next_box = gr.Textbox(visible="hidden", elem_id="wd-next-json")
        pending = gr.Textbox(visible="hidden", elem_id="wd-pending")
        lease_exp = gr.Textbox(visible="hidden", elem_id="wd-lease-exp")
        blurred = gr.Textbox(visible="hidden", elem_id="wd-blurred", value="0")
        timer = gr.Timer(1.0)

    display = [item_id, meta, text, ocr, rationale, model_line, scores, image, lease_exp, blurred]

    def _load_window(
        username: str, keep: int | None, exclude: list[int], grey_on: bool, session_id: str
    ) -> tuple[dict | None, str, review.Exposure]:
        """(current item payload, JSON list of prefetched payloads, exposure)."""
        with unit_of_work(ctx.engine) as s:
            cards = review.claim_window(
                s,
                username,
                policy,
                blur_nsfw_threshold=blur_level,
                size=PREFETCH + 1,
                keep=keep,
                exclude=exclude,
                lease_s=lease_s,
            )
            exp = review.exposure(s, username)
        payloads = [card_payload(ctx, c, grey_on, session_id) for c in cards]
        return (payloads[0] if payloads else None, json.dumps(payloads[1:]), exp)

    def _audit_refusal(username: str, action: str, item: int, exc: WardenError) -> None:
        # Its own unit of work: the refused action's unit rolled back.
        try:
            with unit_of_work(ctx.engine) as s:
                review.record_refusal(s, username, action, item, str(exc))
        except Exception:  # the refusal stands even if its audit write fails
            log.exception("could not audit a refused %s on item %s", action, item)

    @requires(ctx, *REVIEWERS)
    def load_items(shown: str, grey_on: bool, request: gr.Request) -> list[Any]:
        user = current_user(ctx, request)
        cur, nxt, exp = _load_window(user.username, _as_id(shown), [], grey_on, user.session_id)
        return [*_display(cur), nxt, _exposure_text(exp), [], ""]

    def auto_load(shown: str, grey_on: bool, request: gr.Request) -> list[Any]:
        # Moderators and annotators get an item on page load; others press "Next item".
        user = ctx.active_user(getattr(request, "username", None))
        if user is None or user.role not in (Role.moderator, Role.annotator):
            return [gr.update()] * (len(display) + 4)
        return load_items(shown, grey_on, request)

    @requires(ctx, *REVIEWERS)
    def save(pending_json: str, shown: str, grey_on: bool, request: gr.Request) -> list[Any]:
        user = current_user(ctx, request)
        try:
            p = json.loads(pending_json or "{}")
        except ValueError:
            p = {}
        action = p.get("action")
        acted = _as_id(p.get("item_id"))
        message = ""
        if acted is not None and action in ("decide", "skip", "escalate"):
            try:
                with unit_of_work(ctx.engine) as s:
                    if action == "decide":
                        d = review.submit(
                            s,
                            user.username,
                            acted,
                            list(p.get("categories") or []),
                            note=str(p.get("note") or "")[:4000],
                            policy=policy,
                        )
                        message = f"Item {acted}: {', '.join(d.categories) or 'safe'}"
                    elif action == "skip":
                        review.skip(s, user.username, acted)
                        message = f"Item {acted}: skipped"
                    else:
                        review.escalate(
                            s, user.username, acted, note=str(p.get("note") or "")[:4000]
                        )
                        message = f"Item {acted}: escalated"
            except WardenError as exc:
                _audit_refusal(user.username, action, acted, exc)
                message = inert(f"Item {acted} NOT saved: {exc}")
                gr.Warning(message)
        shown_id = _as_id(shown)
        log.info(
            "save %s on %s by %s (showing %s): %s", action, acted, user.username, shown, message
        )
        cur, nxt, exp = _load_window(
            user.username,
            shown_id,
            [acted] if acted is not None else [],
            grey_on,
            user.session_id,
        )
        if cur is not None and shown_id is not None and cur["id"] == str(shown_id):
            shown_values: list[Any] = [gr.update()] * len(display) + [gr.update(), gr.update()]
        else:
            shown_values = [*_display(cur), [], ""]
        return [*shown_values, nxt, _exposure_text(exp), message]

    @requires(ctx, *REVIEWERS)
    def do_reveal(shown: str, grey_on: bool, request: gr.Request) -> list[Any]:
        user = current_user(ctx, request)
        item = _as_id(shown)
        if item is None:
            return [gr.update(), gr.update(), gr.update(), "No item to reveal"]
        try:
            with unit_of_work(ctx.engine) as s:
                exp = review.reveal(s, user.username, item, policy=policy)
        except WardenError as exc:
            _audit_refusal(user.username, "reveal", item, exc)
            raise
        url = ctx.signer.image_url(
            item,
            "view",
            session_id=user.session_id,
            grey=grey_on,
            ttl_s=ctx.settings.ui.image_url_ttl_s,
        )
        return [image_html(url, False), "0", _exposure_text(exp), f"Item {item}: revealed"]

    @requires(ctx, *REVIEWERS)
    def rerender(shown: str, grey_on: bool, request: gr.Request) -> str:
        # Greyscale toggled: re-sign the image; the raw view only if this user revealed it.
        user = current_user(ctx, request)
        item = _as_id(shown)
        if item is None:
            return gr.update()
        with unit_of_work(ctx.engine) as s:
            # Only the item this user holds: any id can be sent here over HTTP.
            review.require_held(s, user.username, item)
            card = review.build_card(s, item, policy, blur_nsfw_threshold=blur_level)
            revealed = s.scalar(
                select(AuditEvent.id)
                .where(
                    AuditEvent.actor == user.username,
                    AuditEvent.action == "reveal",
                    AuditEvent.item_id == item,
                )
                .limit(1)
            )
        show_view = not card.blur or revealed is not None
        url = ctx.signer.image_url(
            item,
            "view" if show_view else "blur",
            session_id=user.session_id,
            grey=grey_on,
            ttl_s=ctx.settings.ui.image_url_ttl_s,
        )
        return image_html(url, not show_view)

    @requires(ctx, *REVIEWERS)
    def do_undo(request: gr.Request) -> str:
        user = current_user(ctx, request)
        with unit_of_work(ctx.engine) as s:
            d = review.undo(s, user.username)
        return f"Undid your decision on item {d.item_id}; it is back in the queue."

    advance_outputs = [pending, *display, cats, note, next_box]
    save_inputs = [pending, item_id, grey]
    save_outputs = [*display, cats, note, next_box, exposure, status]
    limit = ctx.settings.ui.concurrency_limit
    for btn, action in ((submit_btn, "decide"), (skip_btn, "skip"), (escalate_btn, "escalate")):
        btn.click(
            None,
            inputs=[next_box, item_id, cats, note],
            outputs=advance_outputs,
            js=ADVANCE_JS % action,
            queue=False,
            trigger_mode="multiple",
        ).then(
            save,
            inputs=save_inputs,
            outputs=save_outputs,
            concurrency_limit=limit,
            show_progress="hidden",
            api_visibility="private",
            # A moderator may submit again before the previous save returns: never drop it.
            trigger_mode="multiple",
        ).then(None, inputs=[next_box], js=PRELOAD_JS, queue=False, trigger_mode="multiple")

    load_outputs = [*display, next_box, exposure, cats, note]
    next_btn.click(
        load_items,
        inputs=[item_id, grey],
        outputs=load_outputs,
        concurrency_limit=limit,
        api_visibility="private",
    ).then(None, inputs=[next_box], js=PRELOAD_JS, queue=False)
    reveal_btn.click(
        do_reveal,
        inputs=[item_id, grey],
        outputs=[image, blurred, exposure, status],
        concurrency_limit=limit,
        api_visibility="private",
    )
    grey.change(
        rerender,
        inputs=[item_id, grey],
        outputs=[image],
        concurrency_limit=limit,
        api_visibility="private",
    )
    undo_btn.click(do_undo, outputs=[status], concurrency_limit=limit, api_visibility="private")
    keys_btn.click(None, js="() => { document.body.classList.toggle('wd-help'); }", queue=False)
    timer.tick(
        None,
        inputs=[lease_exp],
        outputs=[lease_view],
        js=LEASE_JS,
        queue=False,
        show_progress="hidden",
    )
    tab.select(
        auto_load,
        inputs=[item_id, grey],
        outputs=load_outputs,
        api_visibility="private",
        show_progress="hidden",
    )
    return ReviewTab(
        tab=tab, on_load=auto_load, load_inputs=[item_id, grey], load_outputs=load_outputs
    )


def _as_id(value: Any) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None
