"""The Review card's media strip: every image of a post (or frame of a video, worst first, with
its timestamp), each blurred or revealed on its own. Shown under the card's image for items of
several media; a single image keeps the card as it was.

Every image is one of our signed `/img/<item>?...&m=<position>` URLs: the blurred derivative
unless the medium is not graphic or this reviewer revealed it (storage.media_review), so a raw
image never reaches the browser before its reveal. Labels and OCR text are untrusted and go
through `html.escape`. Keyboard (app/static/media.js): `[` / `]` (or the arrow keys inside the
strip) move between media, `V` reveals the selected one; a click selects one. Its words (labels,
the blur note, the group's name) are in the reviewer's language (`lang`, `review.strip`).

    markup = strip_for(ctx, user, item_id, grey=False, lang="ko")
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from app.description import medium_label
from app.evidence_overlay import frame_for, latest_regions
from app.i18n import blur_reason_text, translate
from storage.db import unit_of_work
from storage.errors import Conflict
from storage.media_review import MediumView, media_views, reveal_medium
from storage.review import Exposure, require_held

if TYPE_CHECKING:
    from app.context import AppContext, CurrentUser
    from storage.policy import Policy

THUMB_PX = 160


def strip_html(
    views: list[MediumView],
    urls: dict[int, str],
    item_id: int,
    lang: str | None = None,
    regions: list[Any] | None = None,
    policy: Policy | None = None,
) -> str:
    """Markup of the strip in `lang`; "" for an item of one medium (the card's image says it
    all). `regions`: the prediction's evidence regions, drawn over each image's thumbnail
    (app.evidence_overlay; category labels only, no OCR text at this size)."""
    if len(views) <= 1:
        return ""
    figures = []
    for n, v in enumerate(views):
        state = "revealed" if v.show_raw else "blurred"
        note = ""
        if not v.show_raw:
            reason = blur_reason_text(v.blur_reason, policy, lang)
            why = f": {html.escape(reason)}" if v.blur_reason else ""
            text = translate("review.strip.blurred", lang, why=why)
            note = f'<span class="wd-blurnote">{text}</span>'
        current = " wd-medium-current" if n == 0 else ""
        row = {"position": v.position, "kind": v.kind, "timestamp_s": v.timestamp_s}
        label = html.escape(medium_label(row, lang or "en"))
        shown = translate(f"review.strip.state_{state}", lang)
        alt = html.escape(f"{label} ({shown})", quote=True)
        img = (
            f'<img src="{html.escape(urls[v.position], quote=True)}" width="{THUMB_PX}" '
            f'alt="{alt}">'
        )
        if regions and policy is not None:
            frame = frame_for(
                regions, policy, lang or "en", hide_text=True, position=v.position,
                width=f"{THUMB_PX}px",
            )  # fmt: skip
            img = f"{frame[0]}{img}{frame[1]}" if frame else img
        figures.append(
            f'<figure class="wd-medium wd-{state}{current}" tabindex="0" '
            f'data-position="{v.position}" data-state="{state}">'
            f"{img}<figcaption>{label} {note}</figcaption></figure>"
        )
    kind = "frames" if views[0].kind == "frame" else "images"
    group = html.escape(translate(f"review.strip.{kind}", lang, n=len(views)), quote=True)
    return (
        f'<div class="wd-media" data-item="{int(item_id)}" role="group" '
        f'aria-label="{group}">{"".join(figures)}</div>'
    )


def _urls(ctx: AppContext, user: CurrentUser, item_id: int, views: list[MediumView], grey: bool):
    return {
        v.position: ctx.signer.image_url(
            item_id,
            "view" if v.show_raw else "blur",
            session_id=user.session_id,
            grey=grey,
            ttl_s=ctx.settings.ui.image_url_ttl_s,
            medium=v.position,
        )
        for v in views
    }


def strip_for(
    ctx: AppContext, user: CurrentUser, item_id: int, *, grey: bool, lang: str | None = None
) -> str:
    """The strip of an item `user` holds ("" when they do not, or it has one medium)."""
    with unit_of_work(ctx.engine) as s:
        try:
            require_held(s, user.username, item_id)
        except Conflict:
            return ""
        views = media_views(
            s, item_id, user.username, ctx.policy,
            blur_nsfw_threshold=ctx.settings.ui.blur_nsfw_threshold,
        )  # fmt: skip
        regions = latest_regions(s, item_id) if len(views) > 1 else []
    urls = _urls(ctx, user, item_id, views, grey)
    return strip_html(views, urls, item_id, lang, regions, ctx.policy)


def reveal_in_strip(
    ctx: AppContext,
    user: CurrentUser,
    item_id: int,
    position: int,
    *,
    grey: bool,
    lang: str | None = None,
) -> tuple[str, Exposure]:
    """Reveal one medium (audited, under the lease and role checks) and the strip after it."""
    with unit_of_work(ctx.engine) as s:
        exp = reveal_medium(s, user.username, item_id, position, policy=ctx.policy)
        views = media_views(
            s, item_id, user.username, ctx.policy,
            blur_nsfw_threshold=ctx.settings.ui.blur_nsfw_threshold,
        )  # fmt: skip
        regions = latest_regions(s, item_id)
    urls = _urls(ctx, user, item_id, views, grey)
    return strip_html(views, urls, item_id, lang, regions, ctx.policy), exp
