"""The Warden web server: FastAPI owns login and sessions, Gradio's UI is mounted under /ui.

Routes: `/login` (form, throttled per normalised username + IP and per IP), `/logout` (ends
the session server-side), `/img/{item_id}` (signed, expiring URLs only, bound to the session
whose cookie must come with them, or minted for Label Studio; serves a server-side blurred
derivative unless the URL is for the revealed view), `/healthz`, the Label Studio webhook
receiver under `/hooks/labelstudio` when that package is installed, and the Gradio app at `/ui`
behind `auth_dependency` (no open session -> 401 on every Gradio endpoint). Sessions are rows in
the database, checked on every request: a logout, a password or role change, or disabling a
user ends them in every server process at once.

Run: warden serve --host 127.0.0.1 --port 7860
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import anyio
import gradio as gr
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from app.context import SESSION_COOKIE, AppContext, CurrentUser
from app.csp import STRICT_POLICY, add_nonce, new_nonce, page_policy
from app.i18n import (
    FRONTEND_LOCALE,
    LANG_COOKIE,
    LANGS,
    gradio_i18n,
    pin_page_locale,
    request_lang,
    switch_links,
    translate,
)
from storage.audit import record_audit
from storage.db import unit_of_work
from storage.media import medium_image_sha
from storage.models import AuditEvent
from storage.settings import Settings
from storage.signing import EXTERNAL_AUDIENCE

log = logging.getLogger(__name__)

UI_PATH = "/ui"
STATIC_DIR = Path(__file__).resolve().parent / "static"
# Longest side of the images served to the browser (view and blurred derivative).
VIEW_MAX_SIDE = 1024
BLUR_SIDE = 512

# Messages the login page may show (?m=...): keys of app/locales' `login.messages`.
_LOGIN_MESSAGES = ("bad", "locked", "out", "expired")
# Where the language switch may send the browser back to (never a URL from the request).
_LANG_RETURNS = ("/ui/", "/login")


def _login_page(message_key: str | None, lang: str = "en") -> str:
    # Only fixed text goes into this page; nothing from the request is reflected (the language
    # is one of LANGS, the message one of _LOGIN_MESSAGES).
    def t(key: str) -> str:
        return translate(f"login.{key}", lang)

    message = t(f"messages.{message_key}") if message_key in _LOGIN_MESSAGES else ""
    note = f'<p class="msg" role="alert">{message}</p>' if message else ""
    return f"""<!doctype html>
<html lang="{FRONTEND_LOCALE[lang]}"><head><meta charset="utf-8"><title>{t("title")}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font-family:system-ui,sans-serif;background:#f4f5f7;display:flex;justify-content:center;
padding-top:12vh}} form{{background:#fff;padding:2rem;border-radius:8px;width:20rem;
box-shadow:0 1px 4px #0002}} label{{display:block;margin:.8rem 0 .2rem}}
input{{width:100%;padding:.5rem;box-sizing:border-box}} button{{margin-top:1.2rem;width:100%;
padding:.6rem}} .msg{{color:#a00}} .wd-lang{{margin-top:1rem;font-size:.9rem;text-align:center}}
</style></head><body><main>
<form method="post" action="/login" autocomplete="on">
<h1>Warden</h1>{note}
<label for="username">{t("username")}</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">{t("password")}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login-btn" type="submit">{t("submit")}</button>
{switch_links(lang, "/login")}
</form></main></body></html>"""


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def login_key(username: str) -> str:
    """The name logins, failures and lockouts are counted under: the account's one spelling
    (storage.users.normalise_username), so case or spaces give no fresh tries; a name no
    account can have is kept as typed (it still counts against the address)."""
    from storage.errors import WardenError
    from storage.users import normalise_username

    try:
        return normalise_username(username)
    except WardenError:
        return username.strip()[:64]


def login_locked(ctx: AppContext, username: str, ip: str, now: datetime | None = None) -> bool:
    """Whether `username` (a `login_key`) from `ip` has failed too often within the window.

    Failures are audit events, so the count survives restarts and is shared by every server
    process on the same database; a successful login from that IP starts the count again.
    """
    now = now or datetime.now(UTC)
    window = now - timedelta(seconds=ctx.settings.ui.login_lockout_s)
    with unit_of_work(ctx.engine) as s:
        events = s.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.actor == username,
                AuditEvent.action.in_(("login", "login_failed")),
                AuditEvent.at >= window,
            )
            .order_by(AuditEvent.id)
        ).all()
        failures = 0
        for e in events:
            if (e.details or {}).get("ip") != ip:
                continue
            failures = failures + 1 if e.action == "login_failed" else 0
    return failures >= ctx.settings.ui.login_max_failures


def address_locked(ctx: AppContext, ip: str, now: datetime | None = None) -> bool:
    """Whether `ip` has failed too often within the window, over all usernames together.

    Stops one address from trying a few passwords on each of many accounts; unlike the
    per-user count, a successful login does not reset it (an attacker with one account of
    their own could otherwise keep guessing at the others).
    """
    now = now or datetime.now(UTC)
    window = now - timedelta(seconds=ctx.settings.ui.login_lockout_s)
    with unit_of_work(ctx.engine) as s:
        details = s.scalars(
            select(AuditEvent.details).where(
                AuditEvent.action == "login_failed", AuditEvent.at >= window
            )
        ).all()
    failures = sum(1 for d in details if (d or {}).get("ip") == ip)
    return failures >= ctx.settings.ui.login_ip_max_failures


@lru_cache(maxsize=512)
def render_image(store_root: str, sha256: str, variant: str, grey: bool) -> bytes:
    """JPEG bytes of the view image or its blurred derivative (the raw pixels never leave)."""
    from PIL import Image, ImageFilter

    from storage.blobs import BlobStore
    from storage.images import open_view_image

    img = open_view_image(BlobStore(Path(store_root)), sha256).convert("RGB")
    if variant == "blur":
        w, h = img.size
        scale = BLUR_SIDE / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # Downscaling to 6 px throws the detail away for good (what is left is a few colour
        # patches); the heavy blur then hides the blocks.
        small = img.copy()
        small.thumbnail((6, 6), Image.Resampling.BOX)
        img = small.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(40))
    else:
        img.thumbnail((VIEW_MAX_SIDE, VIEW_MAX_SIDE), Image.Resampling.LANCZOS)
    if grey:
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


class _Guard(BaseHTTPMiddleware):
    """Security headers, the upload size cap, and a login redirect for the UI's page."""

    def __init__(self, app: FastAPI, ctx: AppContext) -> None:
        super().__init__(app)
        self.ctx = ctx

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length")
        limit = self.ctx.settings.ui.max_upload_bytes
        if length and length.isdigit() and int(length) > limit:
            return PlainTextResponse("Upload too large.", status_code=413)
        path = request.url.path
        if request.method == "GET" and path in (UI_PATH, UI_PATH + "/"):
            if session_user(self.ctx, request) is None:
                return RedirectResponse("/login?m=expired", status_code=303)
        response = await call_next(request)
        if response.headers.get("content-type", "").startswith("text/html"):
            if path in (UI_PATH, UI_PATH + "/") and response.status_code == 200:
                response = await _with_nonce(response, request_lang(request))
            else:
                response.headers["Content-Security-Policy"] = STRICT_POLICY
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


async def _with_nonce(response: Response, lang: str) -> Response:
    """The workbench page with a fresh nonce on its scripts, and the policy naming it; the page
    speaks `lang` (app.i18n.pin_page_locale)."""
    if response.headers.get("content-encoding"):
        raise RuntimeError("the workbench page is compressed; cannot add the CSP nonce")
    body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
    nonce = new_nonce()
    page = add_nonce(pin_page_locale(body, lang), nonce)
    replaced = (b"content-length", b"content-security-policy", b"cache-control")
    out = Response(page, status_code=response.status_code)
    out.raw_headers = [(k, v) for k, v in response.raw_headers if k.lower() not in replaced] + [
        (b"content-length", str(len(page)).encode()),
        (b"content-security-policy", page_policy(nonce).encode()),
        (b"cache-control", b"no-store"),  # a cached page would reuse its nonce
    ]
    return out


def request_user(ctx: AppContext, request: Request) -> CurrentUser | None:
    """The user of the request's open session (checked in the database), or None."""
    return ctx.session_user(request.cookies.get(SESSION_COOKIE))


def session_user(ctx: AppContext, request: Request) -> str | None:
    """The logged-in, enabled username behind the request's session cookie, or None."""
    user = request_user(ctx, request)
    return user.username if user is not None else None


def create_app(settings: Settings, ctx: AppContext | None = None) -> FastAPI:
    """The whole web app: auth routes, image route, webhooks, and the mounted Gradio UI."""
    from app.ui import build_app

    ctx = ctx or AppContext.create(settings)
    app = FastAPI(title="Warden", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    app.add_middleware(_Guard, ctx=ctx)

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        target = UI_PATH + "/" if session_user(ctx, request) else "/login"
        return RedirectResponse(target, status_code=303)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, m: str | None = None) -> HTMLResponse:
        page = _login_page(m, request_lang(request))
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/lang/{lang}", include_in_schema=False)
    def choose_language(lang: str, next: str = "/ui/") -> Response:
        # The language switch: remembered in a cookie, then back to the page it was on.
        if lang not in LANGS:
            return PlainTextResponse("Unknown language.", status_code=404)
        response = RedirectResponse(next if next in _LANG_RETURNS else "/ui/", status_code=303)
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            httponly=True,
            secure=ctx.settings.ui.secure_cookies,
            samesite="lax",
            path="/",
        )
        return response

    @app.post("/login", include_in_schema=False)
    def login(request: Request, username: str = Form(""), password: str = Form("")) -> Response:
        from storage.sessions import start_session
        from storage.users import authenticate

        username = login_key(username[:256])
        ip = _client_ip(request)
        if not username or not password:
            return RedirectResponse("/login?m=bad", status_code=303)
        if address_locked(ctx, ip) or login_locked(ctx, username, ip):
            with unit_of_work(ctx.engine) as s:
                record_audit(s, username, "login_locked", ip=ip)
            return HTMLResponse(_login_page("locked", request_lang(request)), status_code=429)
        ttl_s = ctx.settings.ui.session_ttl_s
        with unit_of_work(ctx.engine) as s:
            user = authenticate(s, username, password[:1024])
            record_audit(s, username, "login" if user else "login_failed", ip=ip)
            session_id = start_session(s, user.id, ttl_s=ttl_s) if user is not None else None
        if user is None or session_id is None:
            return RedirectResponse("/login?m=bad", status_code=303)
        response = RedirectResponse(UI_PATH + "/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            ctx.signer.make_session(user.username, session_id, ttl_s),
            max_age=ctx.settings.ui.session_ttl_s,
            httponly=True,
            secure=ctx.settings.ui.secure_cookies,
            samesite="lax",
            path="/",
        )
        return response

    @app.api_route("/logout", methods=["GET", "POST"], include_in_schema=False)
    def logout(request: Request) -> Response:
        from storage.sessions import end_session

        user = request_user(ctx, request)
        if user is not None:
            with unit_of_work(ctx.engine) as s:
                end_session(s, user.session_id, why="logout")
                record_audit(s, user.username, "logout", ip=_client_ip(request))
        response = RedirectResponse("/login?m=out", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
        return response

    @app.get("/img/{item_id}", include_in_schema=False)
    def image(
        request: Request,
        item_id: int,
        v: str = "blur",
        g: int = 0,
        exp: int = 0,
        sig: str = "",
        a: str = "",
        m: int = 0,
    ) -> Response:
        # `m`: one medium of a post or video (its position; 0 = the cover), signed into the URL.
        if a == EXTERNAL_AUDIENCE:  # minted for Label Studio, whose annotators have no cookie
            allowed = ctx.signer.check_image(item_id, v, bool(g), exp, sig, medium=m)
        else:
            # Bound to the session it was minted for: without that session's cookie (or once
            # the session is over) the URL is worthless, however it leaked.
            user = request_user(ctx, request)
            allowed = user is not None and ctx.signer.check_image(
                item_id, v, bool(g), exp, sig, session_id=user.session_id, medium=m
            )
        if not allowed:
            return PlainTextResponse("Forbidden.", status_code=403)
        with unit_of_work(ctx.engine) as s:
            sha = medium_image_sha(s, item_id, m)
        if sha is None:
            return PlainTextResponse("Not found.", status_code=404)
        try:
            data = render_image(str(ctx.blob_store.root), sha, v, bool(g))
        except (OSError, ValueError):
            log.exception("cannot render item %s", item_id)
            return PlainTextResponse("Image unavailable.", status_code=404)
        max_age = max(0, exp - int(datetime.now(UTC).timestamp()))
        return Response(
            data,
            media_type="image/jpeg",
            headers={
                "Cache-Control": f"private, max-age={max_age}",
                "X-Warden-Variant": v,
            },
        )

    _mount_webhooks(app, ctx)

    async def gradio_user(request: Request) -> str | None:
        # Every Gradio request checks the session in the database; off the event loop.
        return await anyio.to_thread.run_sync(session_user, ctx, request)

    blocks, head, css = build_app(ctx)
    gr.mount_gradio_app(
        app,
        blocks,
        path=UI_PATH,
        auth_dependency=gradio_user,
        run_history=False,
        footer_links=[],
        head=head,
        css=css,
        i18n=gradio_i18n(ctx.policy),
        max_file_size=ctx.settings.ui.max_upload_bytes,
        show_error=False,
        mcp_server=False,
    )
    return app


def _mount_webhooks(app: FastAPI, ctx: AppContext) -> None:
    """Label Studio's webhook receiver (it checks its own HMAC signature), when installed."""
    try:
        from training.labelstudio.webhook import make_webhook_router
    except ImportError:
        return
    try:
        router = make_webhook_router(ctx.settings, ctx.engine)
    except Exception:  # the workbench still serves; webhooks are caught up by reconcile
        log.exception("Label Studio webhook receiver not mounted")
        return
    app.include_router(router, prefix="/hooks/labelstudio")


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn
    from sqlalchemy.engine import make_url

    from storage.masking import install_log_masking
    from storage.migrate import upgrade

    install_log_masking(settings)
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        upgrade(settings.database_url)  # the embedded default needs no separate set-up step
    app = create_app(settings)
    # log_config=None: uvicorn's records go through the root logger, whose handlers mask secrets.
    uvicorn.run(
        app, host=host, port=port, log_level="warning", proxy_headers=False, log_config=None
    )
