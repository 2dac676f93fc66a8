"""The workbench's languages: English, Korean and Chinese text from app/locales/<lang>.yaml.

Static text (tab names, labels, buttons, help) is a key, `ui_text("review.submit")`, that
Gradio's front end translates (`gradio_i18n`, passed to `gr.mount_gradio_app(i18n=...)`);
text a handler writes (who is logged in, empty states, category names in the score panel and
charts) is translated on the server with `translate(key, lang)`. Both follow one language per
request, `request_lang`: the `warden_lang` cookie set by the switch (`/lang/<code>`), else the
browser's Accept-Language, else English. Gradio picks its language from `navigator.language`
alone, which no server setting reaches, so the served page pins it first (`pin_page_locale`):
the switch is a cookie and a reload, and both halves always agree.

Category names and definitions come from the policy file (`PolicyCategory.title_in`), not from
here: a team edits its policy, not the workbench.
"""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from gradio.i18n import I18n, I18nData

from storage.policy import Policy

LOCALES = Path(__file__).resolve().parent / "locales"
LANGS = ("en", "ko", "zh")
DEFAULT_LANG = "en"
LANG_NAMES = {"en": "English", "ko": "한국어", "zh": "中文"}
# Gradio ships its own strings for "ko" and "zh-CN" (not "zh"): the page is pinned to these.
FRONTEND_LOCALE = {"en": "en", "ko": "ko", "zh": "zh-CN"}
LANG_COOKIE = "warden_lang"
# Keys of the policy's category titles in the front end's catalogue (`category_text`).
CATEGORY_PREFIX = "policy.category."

_HTML_OPEN = re.compile(rb"<html\b[^>]*>", re.IGNORECASE)
_HTML_LANG = re.compile(rb'\blang="[^"]*"')
_HEAD = re.compile(rb"<head\b[^>]*>", re.IGNORECASE)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flatten(value, name + ".")
        elif isinstance(value, str):
            flat[name] = value
        else:
            raise ValueError(f"{name}: translations are strings, got {type(value).__name__}")
    return flat


@lru_cache(maxsize=1)
def catalog() -> dict[str, dict[str, str]]:
    """{lang: {dotted key: text}} from app/locales/<lang>.yaml (nested mappings flattened)."""
    out = {}
    for lang in LANGS:
        data = yaml.safe_load((LOCALES / f"{lang}.yaml").read_text(encoding="utf-8")) or {}
        out[lang] = _flatten(data)
    return out


def ui_text(key: str) -> I18nData:
    """A static UI string, translated in the browser. An unknown key fails when the app is
    built (a typo never reaches a page as a raw key)."""
    if key not in catalog()[DEFAULT_LANG]:
        raise KeyError(f"no UI text {key!r} in {LOCALES / 'en.yaml'}")
    return I18nData(key)


def category_text(category_id: str) -> I18nData:
    """A policy category's title, translated in the browser (catalogue from `gradio_i18n`)."""
    return I18nData(CATEGORY_PREFIX + category_id)


def translate(key: str, lang: str | None, **values: Any) -> str:
    """Server-side text in `lang` (English where that language lacks the key)."""
    texts = catalog()
    text = texts.get(lang or DEFAULT_LANG, {}).get(key) or texts[DEFAULT_LANG][key]
    return text.format(**values) if values else text


def blur_reason_text(reason: str, policy: Policy | None, lang: str | None) -> str:
    """Why an image is blurred (storage.review.blur_reason: `violence_gore 0.91 · NSFW 0.95`,
    or `not scored yet`) with the policy's category titles in `lang` ("Violence and gore 0.91 ·
    NSFW 0.95"). Plain text: the caller escapes it."""
    if reason == "not scored yet":
        return translate("review.card.not_scored", lang)
    if policy is None:
        return reason
    ids = set(policy.ids)
    parts = []
    for part in reason.split(" · "):
        head, _, score = part.rpartition(" ")
        parts.append(f"{policy.category(head).title_in(lang)} {score}" if head in ids else part)
    return " · ".join(parts)


def gradio_i18n(policy: Policy) -> I18n:
    """The front end's catalogue: every UI key, plus the policy's category titles."""
    langs = {}
    for lang in LANGS:
        texts = dict(catalog()[lang])
        for c in policy.categories:
            texts[CATEGORY_PREFIX + c.id] = c.title_in(lang)
        langs[FRONTEND_LOCALE[lang]] = texts
    return I18n(**langs)


def _accept_language(header: str) -> str | None:
    """The first supported language of an Accept-Language header, by weight."""
    ranked = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        ranked.append((-weight, i, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        base = tag.split("-")[0]
        if base in LANGS:
            return base
    return None


def resolve_lang(cookie: str | None, accept_language: str | None) -> str:
    """The switch's choice (cookie) wins; then the browser's languages; then English."""
    if cookie in LANGS:
        return str(cookie)
    return _accept_language(accept_language or "") or DEFAULT_LANG


def request_lang(request: Any) -> str:
    """The language of a Starlette or Gradio request (None: English)."""
    if request is None:
        return DEFAULT_LANG
    cookies = getattr(request, "cookies", None) or {}
    headers = getattr(request, "headers", None) or {}
    return resolve_lang(cookies.get(LANG_COOKIE), headers.get("accept-language"))


def pin_page_locale(page: bytes, lang: str) -> bytes:
    """The workbench page with `<html lang>` set and `navigator.language` pinned to `lang`
    before any of Gradio's scripts runs (its front end reads nothing else)."""
    code = FRONTEND_LOCALE.get(lang, DEFAULT_LANG)
    literal = json.dumps(code)
    script = (
        "<script>(function(){var l=" + literal + ";try{"
        "Object.defineProperty(navigator,'language',{get:function(){return l},configurable:true});"
        "Object.defineProperty(navigator,'languages',{get:function(){return [l]},"
        "configurable:true});}catch(e){}})();</script>"
    ).encode()
    page = _HEAD.sub(lambda m: m.group(0) + script, page, count=1)

    def set_lang(m: re.Match[bytes]) -> bytes:
        tag = m.group(0)
        if _HTML_LANG.search(tag):
            return _HTML_LANG.sub(b'lang="' + code.encode() + b'"', tag, count=1)
        return tag[:5] + b' lang="' + code.encode() + b'"' + tag[5:]

    return _HTML_OPEN.sub(set_lang, page, count=1)


def switch_links(current: str, back_to: str) -> str:
    """The language switch: one link per language, each named in its own language."""
    links = []
    for lang in LANGS:
        here = ' aria-current="true" class="wd-lang-on"' if lang == current else ""
        href = html.escape(f"/lang/{lang}?next={back_to}", quote=True)
        links.append(
            f'<a href="{href}" lang="{FRONTEND_LOCALE[lang]}" hreflang="{FRONTEND_LOCALE[lang]}"'
            f' style="white-space:nowrap"{here}>{LANG_NAMES[lang]}</a>'
        )
    label = html.escape(translate("ui.language", current), quote=True)
    return f'<nav class="wd-lang" aria-label="{label}">{" · ".join(links)}</nav>'
