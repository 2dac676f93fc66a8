"""The workbench UI: a factory laying out one tab per file in app/tabs/.

Text is English, Korean or Chinese (app.i18n: static labels are keys that Gradio's front end
translates; what handlers write follows the same per-request language), with a switch in the
header. Tabs show per role (moderator: review, queue, upload; annotator: review, queue; engineer: +
dashboard, models; admin: everything incl. audit and bulk); every handler checks the role
again on the server (app.roles), since hidden tabs protect nothing.

    blocks, head, css = build_app(settings)   # mounted by app.server.create_app
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.context import AppContext
from app.i18n import request_lang, switch_links, translate, ui_text
from app.roles import TAB_ROLES, current_user
from app.tabs import audit, dashboard, models, queue, review, upload
from storage.domain import Role
from storage.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"


def page_head() -> str:
    css = (STATIC / "warden.css").read_text(encoding="utf-8")
    keys = (STATIC / "keys.js").read_text(encoding="utf-8")
    media = (STATIC / "media.js").read_text(encoding="utf-8")  # the Review card's media strip
    return f"<style>{css}</style>\n<script>{keys}\n{media}</script>"


def build_app(settings: Settings | AppContext) -> tuple[gr.Blocks, str, str]:
    """(Blocks, head, css) for `gr.mount_gradio_app`; nothing is built at import time."""
    ctx = settings if isinstance(settings, AppContext) else AppContext.create(settings)
    with gr.Blocks(title="Warden", analytics_enabled=False) as blocks:
        # The page's one top-level heading, for screen readers (axe: page-has-heading-one).
        gr.HTML('<h1 class="wd-sr-only">Warden</h1>', container=False, padding=False)
        with gr.Row():
            who = gr.Textbox(
                show_label=False, interactive=False, container=False, scale=6, elem_id="wd-who"
            )
            # Filled on load: the links name the current language (a cookie and a reload).
            languages = gr.HTML("", elem_id="wd-lang", scale=2, min_width=160)
            gr.Button(ui_text("ui.logout"), link="/logout", size="sm", scale=1, elem_id="wd-logout")
        with gr.Tabs(elem_id="wd-tabs") as tab_strip:
            review_tab = review.build(ctx)
            queue_tab = queue.build(ctx)
            upload_tab = upload.build(ctx)
            dashboard_tab = dashboard.build(ctx)
            models_tab = models.build(ctx)
            audit_tab = audit.build(ctx)
        # A queue row opens in Review: claimed under a lease, then shown on the card.
        queue.connect_review(ctx, queue_tab, review_tab, tab_strip)
        tabs = {
            "review": review_tab.tab,
            "queue": queue_tab.tab,
            "upload": upload_tab.tab,
            "dashboard": dashboard_tab.tab,
            "models": models_tab.tab,
            "audit": audit_tab.tab,
        }

        def on_load(request: gr.Request) -> list[object]:
            user = current_user(ctx, request)
            lang = request_lang(request)
            shown = [gr.update(visible=user.role in TAB_ROLES[name]) for name in tabs]
            bulk = gr.update(visible=user.role == Role.admin)
            role = translate(f"roles.{user.role.value}", lang)
            who_text = translate("ui.logged_in", lang, user=user.username, role=role)
            return [who_text, switch_links(lang, "/ui/"), *shown, bulk]

        blocks.load(
            on_load,
            outputs=[who, languages, *tabs.values(), queue_tab.bulk_box],
            api_visibility="private",
        )
        blocks.load(
            review_tab.on_load,
            inputs=review_tab.load_inputs,
            outputs=review_tab.load_outputs,
            api_visibility="private",
        )
    blocks.queue(default_concurrency_limit=ctx.settings.ui.concurrency_limit)
    return blocks, page_head(), ""
