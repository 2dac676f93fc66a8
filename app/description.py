"""The model's description of each image or frame, at the top of the Review card (text first:
a moderator can often decide without revealing).

Reads the prediction's record (model.describe, `ReviewCard.description`): written descriptions
one per medium, labelled "Image 2" or "Frame at 3.2 s" for posts and videos; a model that
cannot see images (the demo) says plainly that there is none; nothing at all when the
deployment does not describe. The descriptions are model output, untrusted like OCR text:
every character goes through `html.escape`, and no text is ever made up here.

    markup = description_html(card.description, lang)
"""

from __future__ import annotations

import html
from typing import Any

from app.i18n import translate


def _position(row: dict[str, Any]) -> int:
    position = row.get("position")
    return position if isinstance(position, int) and position >= 0 else 0


def medium_label(row: dict[str, Any], lang: str) -> str:
    """'Image 2', 'Frame at 3.2 s' (or 'Frame 3' without a timestamp), in `lang`."""
    n = _position(row) + 1
    if row.get("kind") == "frame":
        t = row.get("timestamp_s")
        if isinstance(t, int | float):
            return translate("description.frame", lang, t=f"{float(t):.1f}")
        return translate("description.frame_n", lang, n=n)
    return translate("description.image", lang, n=n)


def _none(key: str, lang: str) -> str:
    line = html.escape(translate(key, lang))
    return f'<section class="wd-desc wd-desc-none" data-state="none"><p>{line}</p></section>'


def description_html(
    record: dict[str, Any] | None, lang: str = "en", graphic: tuple[str, ...] = ()
) -> str:
    """Markup for the card's description box; "" when the prediction has no record.

    On a card flagged in a category the policy marks graphic (`graphic`: their titles) the
    written text starts collapsed, like the card's OCR text: a description of gore is exposure
    too, so the moderator opens it on purpose (one click, no reveal of the image needed)."""
    if not isinstance(record, dict):
        return ""
    status = record.get("status")
    if status == "unavailable":
        return _none("description.unavailable", lang)
    if status == "failed":
        return _none("description.failed", lang)
    media = [m for m in record.get("media") or [] if isinstance(m, dict)]
    if status != "written" or not media:
        return ""
    e = html.escape
    title = e(translate("description.title", lang))
    caveat = e(translate("description.caveat", lang))

    def text_of(m: dict[str, Any]) -> str:
        text = m.get("text")
        if isinstance(text, str) and text.strip():
            return f'<span class="wd-desc-text">{e(text)}</span>'
        empty = e(translate("description.empty", lang))
        return f'<span class="wd-desc-text wd-desc-empty">{empty}</span>'

    if len(media) == 1:
        body = f"<p>{text_of(media[0])}</p>"
    else:
        rows = [
            f'<dt data-position="{_position(m)}">{e(medium_label(m, lang))}</dt>'
            f"<dd>{text_of(m)}</dd>"
            for m in media
        ]
        body = f"<dl>{''.join(rows)}</dl>"
    if graphic:
        why = e(translate("description.graphic", lang, graphic=", ".join(graphic)))
        body = f'<details class="wd-desc-graphic"><summary>{why}</summary>{body}</details>'
    return (
        f'<section class="wd-desc" data-state="written" aria-label="{title}">'
        f'<div class="wd-desc-head">{title} <small>({caveat})</small></div>{body}</section>'
    )
