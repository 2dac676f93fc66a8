"""The workbench's languages without a browser: every key in every language, no English left in
the built tabs, the language a request gets, the pinned page and the login page.

Run: .venv/bin/pytest tests/app/test_i18n.py
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import gradio as gr
import pytest
from gradio.i18n import I18nData

from app.i18n import (
    CATEGORY_PREFIX,
    LANGS,
    catalog,
    gradio_i18n,
    pin_page_locale,
    resolve_lang,
    switch_links,
    translate,
    ui_text,
)
from app.server import _login_page
from app.ui import build_app
from storage.migrate import upgrade
from storage.policy import load_policy
from storage.settings import DEFAULT_POLICY, Settings

HANGUL = re.compile(r"[\uac00-\ud7a3]")
HAN = re.compile(r"[\u4e00-\u9fff]")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_every_key_exists_in_every_language_with_the_same_placeholders() -> None:
    texts = catalog()
    english = texts["en"]
    assert len(english) > 100
    for lang in LANGS:
        assert set(texts[lang]) == set(english), lang
        for key, text in texts[lang].items():
            assert text.strip(), (lang, key)
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(english[key])), (
                lang,
                key,
            )
    # Translated, not copied: each Korean/Chinese text is in its script (bar a few symbols).
    for key in english:
        if key in ("login.title", "dashboard.summary.line"):  # a name; punctuation only
            continue
        assert HANGUL.search(texts["ko"][key]), f"ko {key}: {texts['ko'][key]!r}"
        assert HAN.search(texts["zh"][key]), f"zh {key}: {texts['zh'][key]!r}"


def test_an_unknown_key_fails_at_build_time() -> None:
    with pytest.raises(KeyError, match="review.sumbit"):
        ui_text("review.sumbit")
    assert isinstance(ui_text("review.submit"), I18nData)


def test_server_side_text_fills_placeholders_and_falls_back_to_english() -> None:
    assert translate("ui.logged_in", "ko", user="kim", role="관리자") == (
        "kim 님으로 로그인됨 (관리자)"
    )
    assert translate("tabs.review", "zh") == "审核"
    assert translate("tabs.review", "fr") == "Review"


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "ko-KR,ko;q=0.9,en-US;q=0.8", "ko"),
        (None, "zh-CN,zh;q=0.9", "zh"),
        (None, "zh-TW", "zh"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "fr-FR,de;q=0.8", "en"),
        (None, "fr;q=0.9, ko;q=0.2, zh;q=0.5", "zh"),  # by weight, not by order
        (None, None, "en"),
        ("ko", "zh-CN", "ko"),  # the switch wins over the browser
        ("xx", "zh-CN", "zh"),  # a forged cookie is ignored
    ],
)
def test_the_language_of_a_request(cookie, header, expected: str) -> None:
    assert resolve_lang(cookie, header) == expected


def test_the_page_is_pinned_before_gradio_runs() -> None:
    page = b'<!doctype html>\n<html\n\tlang="en"\n\tstyle="x"\n>\n<head><meta charset="utf-8" />'
    pinned = pin_page_locale(page, "zh")
    assert b'lang="zh-CN"' in pinned and b'lang="en"' not in pinned
    head_at = pinned.index(b"<head>")
    script_at = pinned.index(b"<script>")
    assert script_at == head_at + len(b"<head>")  # the first thing in <head>
    assert b'"zh-CN"' in pinned[script_at : pinned.index(b"</script>")]


def test_the_switch_links_every_language_and_marks_the_current_one() -> None:
    links = switch_links("ko", "/ui/")
    for lang, name in (("en", "English"), ("ko", "한국어"), ("zh", "中文")):
        assert f'href="/lang/{lang}?next=/ui/"' in links and name in links
    assert links.count("aria-current") == 1 and 'aria-current="true" class="wd-lang-on">한국어' in (
        links
    )
    assert 'aria-label="언어"' in links


def test_the_login_page_speaks_the_language() -> None:
    page = _login_page("bad", "ko")
    assert '<html lang="ko">' in page
    assert "비밀번호" in page and "사용자 이름 또는 비밀번호가 올바르지 않습니다." in page
    assert "Password" not in page
    assert "密码" in _login_page(None, "zh") and "Password" in _login_page(None, "en")
    # Only known messages: an unknown ?m= shows nothing.
    assert 'role="alert"' not in _login_page("<script>", "en")


def test_the_front_end_catalogue_carries_the_policys_category_names() -> None:
    policy = load_policy(DEFAULT_POLICY)
    catalogue = gradio_i18n(policy).translations_dict
    assert set(catalogue) == {"en", "ko", "zh-CN"}  # Gradio's own locale codes
    assert catalogue["ko"][CATEGORY_PREFIX + "scam_fraud"] == "사기"
    assert catalogue["zh-CN"][CATEGORY_PREFIX + "scam_fraud"] == "诈骗与欺诈"
    assert catalogue["en"][CATEGORY_PREFIX + "scam_fraud"] == "Scams and fraud"
    assert catalogue["ko"]["review.submit"] == catalog()["ko"]["review.submit"]


def _strings(value: object) -> list[str]:
    """Text the browser would show as is: a string without a translation key in it."""
    if isinstance(value, str) and "__i18n__" not in value:
        return [value]
    return []


def _text_of(markup: str) -> str:
    """What a reader sees of an HTML value (tags dropped)."""
    return re.sub(r"<[^>]*>", "", markup).strip()


# Values that are data, not UI text: selected choice values, hidden JSON state, a default
# source name.
DATA_VALUES = {"Queue", "All items", "priority", "any", "0", "[]", "upload", ""}
# Text no language translates: nothing, and the product's name.
NAMES = {"", "Warden"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> gr.Blocks:
    root = Path(tmp_path_factory.mktemp("i18n-build"))
    url = f"sqlite:///{root / 'w.db'}"
    upgrade(url)
    blocks, _, _ = build_app(Settings(data_dir=root / "data", WARDEN_DATABASE_URL=url))
    return blocks


def test_no_ui_string_in_the_tabs_is_left_untranslated(built: gr.Blocks) -> None:
    untranslated = []
    checked = 0
    for block in built.blocks.values():
        name = f"{type(block).__name__}#{getattr(block, 'elem_id', None)}"
        for attr in ("label", "placeholder", "info"):
            value = getattr(block, attr, None)
            checked += value is not None
            untranslated += [f"{name}.{attr}={s!r}" for s in _strings(value) if s]
        value = getattr(block, "value", None)
        if isinstance(block, gr.Button | gr.Markdown):
            checked += 1
            untranslated += [f"{name}.value={s!r}" for s in _strings(value) if s]
        elif isinstance(value, str) and value not in DATA_VALUES and _text_of(value) not in NAMES:
            untranslated.append(f"{name}.value={value!r}")
        for choice in getattr(block, "choices", None) or []:
            label = choice[0] if isinstance(choice, tuple | list) else choice
            checked += 1
            if isinstance(label, str) and "__i18n__" not in label and not label.isdigit():
                untranslated.append(f"{name}.choice={label!r}")
    assert checked > 100
    assert untranslated == []


def test_the_walk_catches_an_english_label(built: gr.Blocks) -> None:
    # The check above is not vacuous: a plain string label is what it reports.
    with gr.Blocks() as extra:
        gr.Textbox(label="Plain English")
    labels = [getattr(b, "label", None) for b in extra.blocks.values()]
    assert "Plain English" in [s for v in labels for s in _strings(v)]


def test_the_switch_route_sets_the_cookie_and_only_goes_back_to_our_pages(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from app.server import create_app

    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    client = TestClient(create_app(Settings(data_dir=tmp_path / "data", WARDEN_DATABASE_URL=url)))
    r = client.get("/lang/ko?next=/login", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert r.cookies["warden_lang"] == "ko"
    assert "비밀번호" in client.get("/login").text  # the cookie now picks the language
    evil = client.get("/lang/zh?next=https://evil.example/", follow_redirects=False)
    assert evil.status_code == 303 and evil.headers["location"] == "/ui/"
    assert client.get("/lang/xx", follow_redirects=False).status_code == 404
    client.cookies.clear()
    page = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert '<html lang="zh-CN">' in page and "密码" in page


# --- text the server writes on the Dashboard and Models tabs ----------------------------------

# Data, not UI text: a reviewer's name, version names, dataset and set names, numbers.
DATA_WORDS = {"mia", "v-live", "v-cand", "eng", "ds-2026-12-04", "p1", "dataset:abab:golden"}
NUMBERISH = re.compile(r"^[\s\d.,:;=+\-%()/<>n\[\]|]*$")
SCRIPT = {"ko": HANGUL, "zh": HAN}


def figure_texts(fig) -> list[str]:
    """Every string of a plotly figure a reader sees: title, axis titles, annotations, legend
    names, bar/hover text and category labels (heatmap columns, bar labels)."""
    layout = fig.layout
    out = [layout.title.text]
    for axis in ("xaxis", "yaxis", "yaxis2"):
        ax = getattr(layout, axis, None)
        out.append(ax.title.text if ax is not None and ax.title is not None else None)
    out += [a.text for a in layout.annotations or ()]
    for trace in fig.data:
        out.append(trace.name)
        for attr in ("text", "x", "y"):
            values = getattr(trace, attr, None)
            if isinstance(values, str):
                values = [values]
            out += [v for v in (values if values is not None else ()) if isinstance(v, str)]
    return [t for t in out if t]


def untranslated(texts: list[str], lang: str) -> list[str]:
    """Texts with no letter of `lang`'s script that are not data (names, numbers)."""
    return [
        t
        for t in texts
        if not SCRIPT[lang].search(t)
        and not NUMBERISH.match(t)
        and not set(re.split(r"[\s,;]+", t.strip())) <= DATA_WORDS
    ]


@pytest.fixture
def app_ctx(sqlite_settings: Settings):
    from app.context import AppContext
    from storage.db import make_engine

    engine = make_engine(sqlite_settings.database_url)
    yield AppContext.create(sqlite_settings, engine)
    engine.dispose()


def test_dashboard_text_is_in_the_readers_language(app_ctx) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from app.tabs.dashboard import _accept_rate, figures
    from storage import reports
    from storage.db import unit_of_work
    from tests.app.test_dashboard_tab import _seed

    empty = {lang: figures(replace(app_ctx, policy=app_ctx.policy.in_language(lang)), None, lang)
             for lang in ("ko", "zh")}  # fmt: skip
    _seed(app_ctx, datetime.now(UTC).replace(tzinfo=None))
    for lang in ("ko", "zh"):
        shown = replace(app_ctx, policy=app_ctx.policy.in_language(lang))
        with unit_of_work(app_ctx.engine) as s:
            acc = reports.accept_rate(s)
        for name, f in (("empty", empty[lang]), ("data", figures(shown, "m1", lang))):
            texts: list[str] = [f["summary"], *f["table"].columns]
            for key, fig in f.items():
                if key not in ("table", "summary"):
                    texts += figure_texts(fig)
            texts += figure_texts(_accept_rate(acc, lang)) + figure_texts(
                _accept_rate(acc[:0], lang)
            )
            assert len(texts) > 30, (lang, name)
            assert untranslated(texts, lang) == [], (lang, name)
        # Day ticks written the language's way (not "Dec 05").
        volume = figures(shown, None, lang)["volume"]
        assert volume.layout.xaxis.tickformat == {"ko": "%-m월 %-d일", "zh": "%-m月%-d日"}[lang]
        # Category titles come from the policy's translation; "safe" from the catalogue.
        by_cat = figures(shown, None, lang)["by_cat"].data[0].y
        assert shown.policy.category("scam_fraud").title_in(lang) in by_cat
        assert translate("charts.safe", lang) in by_cat
    # English stays English (the default): the same walk flags it in another language.
    english = figures(app_ctx, None)
    assert english["backlog"].layout.yaxis2.title.text == "age (days)"
    assert untranslated(figure_texts(english["volume"]), "ko") != []


def test_models_text_is_in_the_readers_language(app_ctx) -> None:
    from dataclasses import replace

    from app.tabs.models import compare, version_table
    from storage.db import unit_of_work
    from tests.app.test_models_tab import _register
    from training import registry

    for lang in ("ko", "zh"):
        shown = replace(app_ctx, policy=app_ctx.policy.in_language(lang))
        with unit_of_work(app_ctx.engine) as s:
            none = compare(s, None, shown, lang)
        texts = [none.verdict, none.card_text, *figure_texts(none.chart)]
        texts += [*none.checks.columns, *none.card_splits.columns, *none.swaps.columns]
        assert untranslated(texts, lang) == [], lang
    _register(app_ctx.engine, app_ctx.policy, "v-cand")
    with unit_of_work(app_ctx.engine) as s:
        registry.register_model(s, "v-other", "/m/other", actor="eng")
    for lang in ("ko", "zh"):
        shown = replace(app_ctx, policy=app_ctx.policy.in_language(lang))
        with unit_of_work(app_ctx.engine) as s:
            table = version_table(registry.list_models(s), lang)
            view = compare(s, "v-cand", shown, lang)
            other = compare(s, "v-other", shown, lang)
        texts = [*table.columns, *table.iloc[:, 1], *table.iloc[:, 4]]
        texts += figure_texts(view.chart) + [*view.checks.columns, *view.checks.iloc[:, 0]]
        texts += [*view.checks.iloc[:, -1], *view.card_splits.columns, *view.card_splits.iloc[:, 0]]
        texts += [*view.swaps.columns, *view.card_text.splitlines()]
        # Every line, the gate's reasons too (rebuilt from its check lines in the language).
        verdict = view.verdict.splitlines()
        texts += verdict + other.verdict.splitlines()
        assert len(texts) > 40, lang
        assert untranslated(texts, lang) == [], lang
        scam = shown.policy.category("scam_fraud").title_in(lang)
        assert scam in view.chart.data[0].y
        assert translate("models.check.recall", lang, title=scam) in list(view.checks.iloc[:, 0])
        drop = translate("models.gate_reason.recall", lang, title=scam, drop="0.200", limit="0.030")
        assert f"- {drop}" in verdict, verdict


@pytest.mark.parametrize("lang", ["ko", "zh"])
def test_the_media_strip_speaks_the_reviewers_language(lang: str) -> None:
    from app.media_strip import strip_html
    from storage.media_review import MediumView

    def view(k: int, kind: str, blurred: bool) -> MediumView:
        return MediumView(
            position=k,
            label=f"Image {k + 1}",
            kind=kind,
            timestamp_s=1.5 * k if kind == "frame" else None,
            blurred=blurred,
            revealed=False,
            blur_reason="violence_gore 0.91 · NSFW 0.95 <b>x</b>" if blurred else "",
            ocr_text=None,
            worst_score=0.0,
        )

    urls = {k: f"/img/7?m={k}" for k in range(3)}
    policy = load_policy(DEFAULT_POLICY)
    for kind in ("image", "frame"):
        views = [view(0, kind, False), view(1, kind, False), view(2, kind, True)]
        markup = strip_html(views, urls, 7, lang, policy=policy)
        attrs = " ".join(re.findall(r'(?:alt|aria-label)="([^"]*)"', markup))
        text = _text_of(markup) + " " + attrs
        for english in ("Blurred", "Press V", "images:", "frames:", "Image ", "Frame ", "reveals"):
            assert english not in text, (kind, english, text)
        assert SCRIPT[lang].search(_text_of(markup)) and SCRIPT[lang].search(attrs)
        assert "&lt;b&gt;x&lt;/b&gt;" in markup and "<b>" not in markup  # the reason stays inert
        gore = policy.category("violence_gore").title_in(lang)
        why = f": {html.escape(gore)} 0.91 · NSFW 0.95 &lt;b&gt;x&lt;/b&gt;"
        assert translate("review.strip.blurred", lang, why=why) in markup
    assert strip_html([view(0, "image", True)], urls, 7, lang) == ""


def test_a_blur_reason_names_categories_by_their_titles_in_the_language() -> None:
    from app.i18n import blur_reason_text

    policy = load_policy(DEFAULT_POLICY)
    reason = "violence_gore 0.91 · self_harm 0.80 · NSFW 0.95"
    for lang in ("en", "ko", "zh"):
        gore = policy.category("violence_gore").title_in(lang)
        harm = policy.category("self_harm").title_in(lang)
        assert blur_reason_text(reason, policy, lang) == f"{gore} 0.91 · {harm} 0.80 · NSFW 0.95"
        assert blur_reason_text("not scored yet", policy, lang) == translate(
            "review.card.not_scored", lang
        )
    assert blur_reason_text("NSFW 0.95", policy, "ko") == "NSFW 0.95"
    assert blur_reason_text("violence_gore 0.91", None, "ko") == "violence_gore 0.91"
