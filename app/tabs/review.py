"""Review tab: text first (OCR, posted text, rationale, scores), image blurred until revealed.

Layout: the card in three columns (text, image, model) over a decision bar that stays in view
(categories, note, Submit/Accept/Skip/Escalate/Undo). Admins and engineers also work the
Escalated stream (claimed under a lease, resolved as an overrule); they open on it when
something is waiting, else on an empty state that points to the Queue.

Advancing is instant: the browser already holds the prefetched next item (a hidden JSON box)
and shows it with a client-side `js` step; the decision is saved by a chained `.then` that also
prefetches the item after. Keys (see app/static/keys.js): digits toggle categories, Enter
submits, A accepts the model's flags, S skips, E escalates, R reveals, U undoes, N goes to the
note, D shows the category definitions, ? shows the keys.
All item text is untrusted: it goes only into Textbox components (rendered inert); the score
panel and blur caption are our own markup around `html.escape`d text.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.context import AppContext
from app.description import description_html
from app.evidence_overlay import frame_for
from app.i18n import blur_reason_text, category_text, request_lang, translate, ui_text
from app.media_strip import reveal_in_strip
from app.media_strip import strip_for as media_strip_for
from app.roles import REVIEWERS, current_user, inert, requires
from storage import review
from storage.db import unit_of_work
from storage.domain import Role
from storage.errors import WardenError
from storage.media_review import revealed_positions

log = logging.getLogger(__name__)

# Key label for the n-th category checkbox (1-9, 0, then shift+1.. / "-" for the 11th).
KEY_LABELS = [str(i) for i in range(1, 10)] + ["0"] + [f"⇧{i}" for i in range(1, 10)]

EMPTY_QUEUE = "Nothing to review right now."
EMPTY_ESCALATED = "No escalated items are waiting."
# Said on the Escalated stream once it runs dry (Next item would look there again).
ESCALATED_DONE = "No more escalated items are waiting."
QUEUE, ESCALATED = "Queue", "Escalated"
# Decision bar buttons: small, side by side with the note.
BAR: dict[str, Any] = {"size": "sm", "scale": 1, "min_width": 90}
# Items held ahead of the current one, already in the browser: back-to-back submits stay
# instant while the save of the previous one is still on its way.
PREFETCH = 2


# Server-side text of the review card, by message constant (app/locales: review.*).
_TEXT_KEYS = {
    EMPTY_QUEUE: "review.empty_queue",
    EMPTY_ESCALATED: "review.empty_escalated",
    ESCALATED_DONE: "review.escalated_done",
}


def empty_html(message: str = EMPTY_QUEUE, lang: str = "en") -> str:
    """The empty state: what is (not) there, and a link to the Queue tab (app/static/keys.js)."""
    hint = translate(
        "review.hint_stream" if message == ESCALATED_DONE else "review.hint_next", lang
    )
    text = translate(_TEXT_KEYS[message], lang) if message in _TEXT_KEYS else message
    return (
        f'<div class="wd-noimg wd-empty"><p>{html.escape(text)}</p>'
        f'<p><a href="#" class="wd-goto-queue">{translate("review.open_queue", lang)}</a>'
        f" · {hint}</p></div>"
    )


def image_html(
    url: str | None,
    blurred: bool,
    reason: str = "",
    message: str = "",
    lang: str = "en",
    frame: tuple[str, str] | list[str] | None = None,
) -> str:
    """Markup for the item image; `url` is one of our own signed `/img/...` URLs. A blurred
    image says so, and why (`reason`: categories and NSFW score). `frame`: the evidence
    overlay around the image (app.evidence_overlay.frame_for)."""
    if not url:
        return empty_html(message or EMPTY_QUEUE, lang)
    state = "blurred" if blurred else "revealed"
    caption = ""
    if blurred:
        why = f": {html.escape(reason)}" if reason else ""
        note = translate("review.blurred", lang, why=why)
        caption = f'<div class="wd-blurnote">{note}</div>'
    img = (
        f'<img id="wd-image" class="wd-img wd-{state}" src="{html.escape(url, quote=True)}" '
        f'alt="item image ({state})" data-state="{state}">'
    )
    return f"{frame[0]}{img}{frame[1]}{caption}" if frame else img + caption


def scores_html(card: review.ReviewCard, ctx: AppContext, lang: str = "en") -> str:
    """The score panel: every category sorted by score, coloured against its threshold (over,
    near = at least half of it, low), the policy's definition on hover (and on D), in `lang`.
    No headline category on a safe card."""
    if not card.scored:
        unscored = translate("review.not_scored_yet", lang)
        return f'<div class="wd-scores"><div class="wd-verdict">{unscored}</div></div>'
    cats = {c.id: c for c in ctx.policy.categories}
    e = html.escape
    if card.flagged:
        titles = ", ".join(e(cats[c].title_in(lang) if c in cats else c) for c in card.flagged)
        flags = translate("review.model_flags", lang, titles=titles)
        head = f'<div class="wd-verdict wd-flagged">{flags}</div>'
    else:
        nothing = translate("review.model_safe", lang)
        head = f'<div class="wd-verdict wd-safe">{nothing}</div>'
    rows = []
    for cid, score in sorted(card.scores.items(), key=lambda kv: (-kv[1], kv[0])):
        c = cats.get(cid)
        thr = c.threshold if c else 0.5
        level = "over" if score >= thr else "near" if score >= thr / 2 else "low"
        title = e(c.title_in(lang) if c else cid)
        desc = e(" ".join((c.description_in(lang) if c else "").split()))
        rows.append(
            f'<li class="wd-s wd-{level}" title="{desc}"><span class="wd-s-name">{title}</span>'
            f'<span class="wd-s-bar"><i style="width:{score * 100:.0f}%"></i>'
            f'<b style="left:{thr * 100:.0f}%"></b></span>'
            f'<span class="wd-s-val">{score:.2f}<small> / {thr:.2f}</small></span>'
            f'<span class="wd-def">{desc}</span></li>'
        )
    return f'<div class="wd-scores">{head}<ul>{"".join(rows)}</ul></div>'


@dataclass(frozen=True)
class ReviewTab:
    tab: gr.Tab
    # Page-load hook: hands moderators and annotators their first item.
    on_load: Callable[..., list[Any]]
    load_inputs: list[Any]
    load_outputs: list[Any]
    # Queue tab hook: shows an item the user just claimed from a queue row (same in/outputs).
    show_item: Callable[..., list[Any]] | None = None


def card_payload(
    ctx: AppContext, card: review.ReviewCard, grey: bool, session_id: str, lang: str = "en"
) -> dict[str, Any]:
    """What the browser needs to show one item, as plain JSON (no markup but our own URL).
    The image URL works only with the cookie of session `session_id`."""
    ttl = ctx.settings.ui.image_url_ttl_s
    variant = "blur" if card.blur else "view"
    meta = " · ".join(
        part
        for part in (
            card.filename or translate("review.card.no_filename", lang),
            translate("review.card.source", lang, source=card.source) if card.source else "",
            translate("review.card.priority", lang, priority=card.priority),
        )
        if part
    )
    if card.scored:
        cats = {c.id: c for c in ctx.policy.categories}
        titles = [cats[c].title_in(lang) if c in cats else c for c in card.flagged]
        flagged = ", ".join(titles) or translate("review.msg.safe", lang)
        nsfw = f" · NSFW {card.nsfw:.2f}" if card.nsfw is not None else ""
        model = translate("review.card.model", lang, version=card.model_version, flagged=flagged)
        model += nsfw
    else:
        model = translate("review.card.not_scored", lang)
    return {
        "id": str(card.item_id),
        "meta": meta,
        "text": card.text or "",
        "ocr": _ocr_hidden(card, lang) if card.graphic else _ocr_shown(card, lang),
        "rationale": card.rationale or "",
        "model": model,
        "scores": scores_html(card, ctx, lang),
        "img": ctx.signer.image_url(
            card.item_id, variant, session_id=session_id, grey=grey, ttl_s=ttl
        ),
        "blurred": "1" if card.blur else "0",
        "why": blur_reason_text(card.blur_reason, ctx.policy, lang),
        "blurnote": translate(
            "review.blurred",
            lang,
            why=(
                f": {html.escape(blur_reason_text(card.blur_reason, ctx.policy, lang))}"
                if card.blur_reason
                else ""
            ),
        ),
        "lease": card.lease_expires_at.isoformat() if card.lease_expires_at else "",
        "flags": json.dumps(list(card.flagged)),
        "prefill": list(card.flagged) if ctx.settings.ui.prefill_model_flags else [],
        "description": description_html(card.description, lang, tuple(card.graphic)),
        # A graphic card's OCR text stays hidden until revealed: so do its boxes' texts.
        "evidence": frame_for(card.regions, ctx.policy, lang, hide_text=bool(card.graphic)),
    }


def _ocr_hidden(card: review.ReviewCard, lang: str = "en") -> str:
    """A graphic card's OCR text follows the image: collapsed until revealed."""
    if card.ocr_text is None and card.ocr_read_as is None:
        return _ocr_shown(card, lang)
    return translate("review.card.ocr_hidden", lang, graphic=", ".join(card.graphic))


def _ocr_shown(card: Any, lang: str = "en") -> str:
    """The raw OCR text, and below it how the model's reader read it (leetspeak, look-alikes)."""
    if card.ocr_text is None:
        return "" if card.scored else translate("review.card.not_scored", lang)
    if card.ocr_read_as:
        read_as = translate("review.card.read_as", lang)
        return f"{card.ocr_text}\n\n{read_as}\n{card.ocr_read_as}"
    return card.ocr_text


def _display(
    payload: dict[str, Any] | None, empty: str = EMPTY_QUEUE, lang: str = "en"
) -> list[Any]:
    """Values for DISPLAY components, in order (see `build`)."""
    if payload is None:
        said = translate(_TEXT_KEYS[empty], lang) if empty in _TEXT_KEYS else empty
        box = image_html(None, True, message=empty, lang=lang)
        return ["", said, "", "", "", "", "", box, "", "0", "[]", ""]
    return [
        payload["id"],
        payload["meta"],
        payload["text"],
        payload["ocr"],
        payload["rationale"],
        payload["model"],
        payload["scores"],
        image_html(
            payload["img"],
            payload["blurred"] == "1",
            payload["why"],
            lang=lang,
            frame=payload.get("evidence"),
        ),
        payload["lease"],
        payload["blurred"],
        payload["flags"],
        payload["description"],
    ]


def _exposure_text(exp: review.Exposure, lang: str = "en") -> str:
    return translate("review.exposure_text", lang, today=exp.reveals_today, total=exp.reveals_total)


# Client-side step: show the prefetched next item at once, stash the submitted action.
# Inputs: next_json, shown_id, categories, note, model flags (JSON). Outputs: pending +
# DISPLAY + cats + note + next_json. "accept" takes the model's flags as the categories.
ADVANCE_JS = """
(nextJson, cur, cats, note, flags) => {
  const action = "%s";
  let chosen = cats || [];
  if (action === "accept") {
    try { chosen = JSON.parse(flags || "[]"); } catch (e) { chosen = []; }
  }
  const pend = JSON.stringify({action: action, item_id: cur || null, categories: chosen,
                               note: note || "", t: Date.now()});
  const empty = (msg) => '<div class="wd-noimg">' + msg + '</div>';
  if (!cur) {
    return [pend, "", "Looking for items…", "", "", "", "", "", empty("Looking for items…"),
            "", "0", "[]", "", cats, note, nextJson];
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
    return [pend, "", "Loading the next item…", "", "", "", "", "", empty("Loading…"),
            "", "0", "[]", "", [], "", restJson];
  }
  const st = n.blurred === "1" ? "blurred" : "revealed";
  let img = '<img id="wd-image" class="wd-img wd-' + st + '" src="' + esc(n.img) +
            '" alt="item image (' + st + ')" data-state="' + st + '">';
  // The evidence overlay around the image: our own markup, its text escaped by the server.
  if (Array.isArray(n.evidence)) img = n.evidence[0] + img + n.evidence[1];
  if (st === "blurred") {
    // The server wrote the note in the user's language (its reason already escaped).
    img += '<div class="wd-blurnote">' + (n.blurnote ||
           ("Blurred" + (n.why ? ": " + esc(n.why) : "") + ". Press R to reveal.")) + '</div>';
  }
  return [pend, n.id, n.meta, n.text, n.ocr, n.rationale, n.model, n.scores, img, n.lease,
          n.blurred, n.flags, n.description || "", n.prefill || [], "", restJson];
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
    # Category names follow the page's language (the policy's translations, app.i18n).
    choices = [
        (f"{KEY_LABELS[i] if i < len(KEY_LABELS) else ''} · " + category_text(c.id), c.id)
        for i, c in enumerate(policy.categories)
    ]

    with gr.Tab(ui_text("tabs.review"), id="review", elem_id="tab-review") as tab:
        # The model's description of each image or frame (app/description.py), first.
        description = gr.HTML("", elem_id="wd-description")
        with gr.Row(elem_id="wd-card", equal_height=False):
            with gr.Column(scale=4, min_width=320):
                with gr.Row():
                    item_id = gr.Textbox(
                        label=ui_text("review.item"),
                        elem_id="wd-item-id",
                        interactive=False,
                        max_lines=1,
                        scale=1,
                    )
                    meta = gr.Textbox(
                        label=ui_text("review.file"),
                        elem_id="wd-meta",
                        interactive=False,
                        max_lines=2,
                        scale=3,
                    )
                    stream = gr.Radio(
                        [
                            (ui_text("review.stream_queue"), QUEUE),
                            (ui_text("review.stream_escalated"), ESCALATED),
                        ],
                        value=QUEUE,
                        label=ui_text("review.stream"),
                        elem_id="wd-stream",
                        visible=False,
                        scale=2,
                    )
                ocr = gr.Textbox(
                    label=ui_text("review.ocr"),
                    elem_id="wd-ocr",
                    interactive=False,
                    lines=3,
                    max_lines=8,
                )
                text = gr.Textbox(
                    label=ui_text("review.posted_text"),
                    elem_id="wd-text",
                    interactive=False,
                    lines=1,
                    max_lines=6,
                )
                # Hidden by CSS while empty (its placeholder shows): no empty rationale box.
                rationale = gr.Textbox(
                    label=ui_text("review.rationale"),
                    elem_id="wd-rationale",
                    interactive=False,
                    lines=1,
                    max_lines=6,
                    placeholder=ui_text("review.no_rationale"),
                )
            with gr.Column(scale=3, min_width=280):
                # Filled on load, in the user's language (an empty box, no text, till then).
                image = gr.HTML(
                    '<div class="wd-noimg wd-empty" aria-busy="true"></div>', elem_id="wd-image-box"
                )
                # Items of several media: each image / frame on its own (app/media_strip.py).
                media_strip = gr.HTML("", elem_id="wd-media-strip")
                with gr.Row():
                    reveal_btn = gr.Button(ui_text("review.reveal"), elem_id="wd-reveal", size="sm")
                    grey = gr.Checkbox(
                        label=ui_text("review.greyscale"), value=False, elem_id="wd-grey"
                    )
            with gr.Column(scale=3, min_width=260):
                model_line = gr.Textbox(
                    label=ui_text("review.model"),
                    elem_id="wd-model",
                    interactive=False,
                    max_lines=1,
                )
                scores = gr.HTML("", elem_id="wd-scores")
                exposure = gr.Textbox(
                    label=ui_text("review.exposure"),
                    elem_id="wd-exposure",
                    interactive=False,
                    max_lines=1,
                )
                lease_view = gr.Textbox(
                    label=ui_text("review.lease"),
                    elem_id="wd-lease",
                    interactive=False,
                    max_lines=1,
                )
        with gr.Column(elem_id="wd-decision"):
            cats = gr.CheckboxGroup(
                choices=choices, label=ui_text("review.categories"), elem_id="wd-cats"
            )
            with gr.Row(equal_height=True, elem_id="wd-bar"):
                note = gr.Textbox(
                    show_label=False,
                    placeholder=ui_text("review.note"),
                    elem_id="wd-note",
                    max_lines=3,
                    scale=4,
                    container=False,
                )
                submit_btn = gr.Button(
                    ui_text("review.submit"), variant="primary", elem_id="wd-submit", **BAR
                )
                accept_btn = gr.Button(ui_text("review.accept"), elem_id="wd-accept", **BAR)
                skip_btn = gr.Button(ui_text("review.skip"), elem_id="wd-skip", **BAR)
                escalate_btn = gr.Button(ui_text("review.escalate"), elem_id="wd-escalate", **BAR)
                undo_btn = gr.Button(ui_text("review.undo"), elem_id="wd-undo", **BAR)
                next_btn = gr.Button(ui_text("review.next"), elem_id="wd-next", **BAR)
                keys_btn = gr.Button(ui_text("review.keys"), elem_id="wd-keys", **BAR)
            status = gr.Textbox(
                show_label=False,
                elem_id="wd-status",
                interactive=False,
                max_lines=1,
                placeholder=ui_text("review.last_action"),
                container=False,
            )
        gr.Markdown(ui_text("review.keys_help"), elem_id="wd-keys-help")
        # Client-side state: JSON of the prefetched next item, the pending action, lease expiry,
        # the shown item's model flags (for the accept key).
        next_box = gr.Textbox(visible="hidden", elem_id="wd-next-json")
        pending = gr.Textbox(visible="hidden", elem_id="wd-pending")
        lease_exp = gr.Textbox(visible="hidden", elem_id="wd-lease-exp")
        blurred = gr.Textbox(visible="hidden", elem_id="wd-blurred", value="0")
        flags_box = gr.Textbox(visible="hidden", elem_id="wd-flags", value="[]")
        # The selected medium of the strip and its reveal (app/static/media.js drives both).
        medium_pos = gr.Textbox(visible="hidden", elem_id="wd-medium-pos", value="0")
        reveal_medium_btn = gr.Button(
            ui_text("review.reveal_medium"), visible="hidden", elem_id="wd-reveal-medium"
        )
        timer = gr.Timer(1.0)

    display = [
        item_id,
        meta,
        text,
        ocr,
        rationale,
        model_line,
        scores,
        image,
        lease_exp,
        blurred,
        flags_box,
        description,
    ]

    def _load_window(
        username: str,
        keep: int | None,
        exclude: list[int],
        grey_on: bool,
        session_id: str,
        stream_name: str = QUEUE,
        lang: str = "en",
    ) -> tuple[dict | None, str, review.Exposure]:
        """(current item payload, JSON list of prefetched payloads, exposure)."""
        with unit_of_work(ctx.engine) as s:
            window = review.escalated_window if stream_name == ESCALATED else review.claim_window
            cards = window(
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
        payloads = [card_payload(ctx, c, grey_on, session_id, lang) for c in cards]
        return (payloads[0] if payloads else None, json.dumps(payloads[1:]), exp)

    def _audit_refusal(username: str, action: str, item: int, exc: WardenError) -> None:
        # Its own unit of work: the refused action's unit rolled back.
        try:
            with unit_of_work(ctx.engine) as s:
                review.record_refusal(s, username, action, item, str(exc))
        except Exception:  # the refusal stands even if its audit write fails
            log.exception("could not audit a refused %s on item %s", action, item)

    def _stream_of(user: Any, wanted: str | None) -> str:
        if wanted == ESCALATED and user.role in (Role.admin, Role.engineer):
            return ESCALATED
        return QUEUE

    def _loaded(
        cur: dict | None, nxt: str, exp: review.Exposure, name: str, lang: str
    ) -> list[Any]:
        empty = ESCALATED_DONE if name == ESCALATED else EMPTY_QUEUE
        prefill = cur["prefill"] if cur else []
        return [*_display(cur, empty, lang), nxt, _exposure_text(exp, lang), prefill, ""]

    @requires(ctx, *REVIEWERS)
    def load_items(shown: str, grey_on: bool, stream_name: str, request: gr.Request) -> list[Any]:
        user = current_user(ctx, request)
        name = _stream_of(user, stream_name)
        keep = _as_id(shown)
        lang = request_lang(request)
        cur, nxt, exp = _load_window(user.username, keep, [], grey_on, user.session_id, name, lang)
        return _loaded(cur, nxt, exp, name, lang)

    @requires(ctx, *REVIEWERS)
    def switch_stream(grey_on: bool, stream_name: str, request: gr.Request) -> list[Any]:
        user = current_user(ctx, request)
        name = _stream_of(user, stream_name)
        lang = request_lang(request)
        cur, nxt, exp = _load_window(user.username, None, [], grey_on, user.session_id, name, lang)
        return _loaded(cur, nxt, exp, name, lang)

    def auto_load(shown: str, grey_on: bool, stream_name: str, request: gr.Request) -> list[Any]:
        # Moderators and annotators get a queue item on page load. Admins and engineers get
        # the next escalated item when one waits, else an empty state pointing to the queue
        # (no queue item is claimed for someone who only opened the page).
        user = ctx.active_user(getattr(request, "username", None))
        if user is None:
            return [gr.update()] * (len(display) + 5)
        if user.role in (Role.moderator, Role.annotator):
            return [*load_items(shown, grey_on, QUEUE, request), gr.update(visible=False)]
        with unit_of_work(ctx.engine) as s:
            waiting = review.pending_escalations(s)
            exp = review.exposure(s, user.username)
        if waiting:
            values = load_items(shown, grey_on, ESCALATED, request)
            return [*values, gr.update(visible=True, value=ESCALATED)]
        if _as_id(shown) is not None:
            return [gr.update()] * (len(display) + 4) + [gr.update(visible=True)]
        # Nothing escalated: the stream is left on Queue, so Next item takes a queue item.
        lang = request_lang(request)
        return [
            *_display(None, EMPTY_ESCALATED, lang),
            "[]",
            _exposure_text(exp, lang),
            [],
            "",
            gr.update(visible=True, value=QUEUE),
        ]

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
        name = QUEUE
        lang = request_lang(request)

        def said(key: str, categories: list[str] | None = None, **values: Any) -> str:
            if categories is not None:
                titles = [policy.category(c).title_in(lang) for c in categories]
                values["categories"] = ", ".join(titles) or translate("review.msg.safe", lang)
            return translate(f"review.msg.{key}", lang, item=acted, **values)

        if acted is not None and action in ("decide", "accept", "skip", "escalate"):
            note_text = str(p.get("note") or "")[:4000]
            labels = list(p.get("categories") or [])
            try:
                with unit_of_work(ctx.engine) as s:
                    escalated = review.is_escalated(s, acted)
                    if escalated and user.role in (Role.admin, Role.engineer):
                        name = ESCALATED
                    if escalated and action in ("decide", "accept"):
                        d = review.resolve_escalated(
                            s,
                            user.username,
                            acted,
                            labels,
                            note=note_text,
                            policy=policy,
                            accepted_suggestion=action == "accept",
                        )
                        message = said("resolved", d.categories)
                    elif escalated and action == "skip":
                        review.release_escalated(s, user.username, acted)
                        message = said("skipped_escalated")
                    elif action in ("decide", "accept"):
                        d = review.submit(
                            s,
                            user.username,
                            acted,
                            labels,
                            note=note_text,
                            policy=policy,
                            accepted_suggestion=action == "accept",
                            prefilled=ctx.settings.ui.prefill_model_flags,
                        )
                        message = said(
                            "accepted" if action == "accept" else "decided", d.categories
                        )
                    elif action == "skip":
                        review.skip(s, user.username, acted)
                        message = said("skipped")
                    else:
                        review.escalate(s, user.username, acted, note=note_text)
                        message = said("escalated")
            except WardenError as exc:
                _audit_refusal(user.username, action, acted, exc)
                message = inert(said("not_saved", reason=str(exc)))
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
            name,
            lang,
        )
        if cur is not None and shown_id is not None and cur["id"] == str(shown_id):
            shown_values: list[Any] = [gr.update()] * len(display) + [gr.update(), gr.update()]
        else:
            empty = ESCALATED_DONE if name == ESCALATED else EMPTY_QUEUE
            shown_values = [*_display(cur, empty, lang), cur["prefill"] if cur else [], ""]
        return [*shown_values, nxt, _exposure_text(exp, lang), message]

    @requires(ctx, *REVIEWERS)
    def do_reveal(shown: str, grey_on: bool, request: gr.Request) -> list[Any]:
        user = current_user(ctx, request)
        item = _as_id(shown)
        if item is None:
            return [gr.update()] * 4 + [translate("review.msg.no_item", request_lang(request))]
        try:
            with unit_of_work(ctx.engine) as s:
                exp = review.reveal(s, user.username, item, policy=policy)
                card = review.build_card(s, item, policy, blur_nsfw_threshold=blur_level)
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
        return [
            image_html(url, False, frame=frame_for(card.regions, policy, request_lang(request))),
            "0",
            _ocr_shown(card, request_lang(request)),
            _exposure_text(exp, request_lang(request)),
            translate("review.msg.revealed", request_lang(request), item=item),
        ]

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
            # The cover only: revealing another image of a post reveals that image alone.
            revealed = 0 in revealed_positions(s, user.username, item)
        show_view = not card.blur or revealed
        url = ctx.signer.image_url(
            item,
            "view" if show_view else "blur",
            session_id=user.session_id,
            grey=grey_on,
            ttl_s=ctx.settings.ui.image_url_ttl_s,
        )
        lang = request_lang(request)
        hide = not show_view and bool(card.graphic)
        frame = frame_for(card.regions, policy, lang, hide_text=hide)
        why = blur_reason_text(card.blur_reason, policy, lang)
        return image_html(url, not show_view, why, lang=lang, frame=frame)

    @requires(ctx, *REVIEWERS)
    def do_undo(request: gr.Request) -> str:
        user = current_user(ctx, request)
        with unit_of_work(ctx.engine) as s:
            d = review.undo(s, user.username)
        return translate("review.msg.undone", request_lang(request), item=d.item_id)

    advance_outputs = [pending, *display, cats, note, next_box]
    save_inputs = [pending, item_id, grey]
    save_outputs = [*display, cats, note, next_box, exposure, status]
    limit = ctx.settings.ui.concurrency_limit
    for btn, action in (
        (submit_btn, "decide"),
        (accept_btn, "accept"),
        (skip_btn, "skip"),
        (escalate_btn, "escalate"),
    ):
        btn.click(
            None,
            inputs=[next_box, item_id, cats, note, flags_box],
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
        inputs=[item_id, grey, stream],
        outputs=load_outputs,
        concurrency_limit=limit,
        api_visibility="private",
    ).then(None, inputs=[next_box], js=PRELOAD_JS, queue=False)
    stream.input(
        switch_stream,
        inputs=[grey, stream],
        outputs=load_outputs,
        concurrency_limit=limit,
        api_visibility="private",
    ).then(None, inputs=[next_box], js=PRELOAD_JS, queue=False)
    reveal_btn.click(
        do_reveal,
        inputs=[item_id, grey],
        outputs=[image, blurred, ocr, exposure, status],
        concurrency_limit=limit,
        api_visibility="private",
    )

    @requires(ctx, *REVIEWERS)
    def show_strip(shown: str, grey_on: bool, request: gr.Request) -> str:
        item = _as_id(shown)
        if item is None:
            return ""
        user = current_user(ctx, request)
        return media_strip_for(ctx, user, item, grey=grey_on, lang=request_lang(request))

    @requires(ctx, *REVIEWERS)
    def do_reveal_medium(shown: str, position: str, grey_on: bool, request: gr.Request) -> list:
        user = current_user(ctx, request)
        item = _as_id(shown)
        text = str(position).strip()
        pos = int(text) if text.isdigit() else -1
        lang = request_lang(request)
        if item is None or pos < 0:
            return [gr.update(), gr.update(), translate("review.msg.no_medium", lang)]
        try:
            markup, exp = reveal_in_strip(ctx, user, item, pos, grey=grey_on, lang=lang)
        except WardenError as exc:
            _audit_refusal(user.username, "reveal", item, exc)
            raise
        done = translate("review.msg.medium_revealed", lang, item=item, n=pos + 1)
        return [markup, _exposure_text(exp, lang), done]

    for trigger in (item_id.change, grey.change):
        trigger(
            show_strip,
            inputs=[item_id, grey],
            outputs=[media_strip],
            concurrency_limit=limit,
            api_visibility="private",
            show_progress="hidden",
        )
    reveal_medium_btn.click(
        do_reveal_medium,
        inputs=[item_id, medium_pos, grey],
        outputs=[media_strip, exposure, status],
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
    auto_outputs = [*load_outputs, stream]
    tab.select(
        auto_load,
        inputs=[item_id, grey, stream],
        outputs=auto_outputs,
        api_visibility="private",
        show_progress="hidden",
    )

    def show_item(shown: str, grey_on: bool, _stream: str, request: gr.Request) -> list[Any]:
        # The queue stream keeps a held item current: the one just claimed is shown first.
        return [*load_items(shown, grey_on, QUEUE, request), gr.update(value=QUEUE)]

    return ReviewTab(
        tab=tab,
        on_load=auto_load,
        load_inputs=[item_id, grey, stream],
        load_outputs=auto_outputs,
        show_item=show_item,
    )


def _as_id(value: Any) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None
