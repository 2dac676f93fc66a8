"""Role checks inside every Gradio handler.

Gradio lets any logged-in user call any handler over HTTP (hidden buttons protect nothing), so
each handler is wrapped with `requires(ctx, *roles)`: it reads the request's session cookie,
checks the session is still open in the database (and the user enabled) and the user's current
role, and refuses with a `gr.Error` before the handler runs. `WardenError`s become `gr.Error`s
with the same message (user-facing). Every refusal is one log line,
`refused handler=<name> user=<u> reason=<msg>`, never a traceback.

    @requires(ctx, *ADMIN)
    def list_events(query: str, request: gr.Request) -> ...
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from app.context import SESSION_COOKIE, AppContext, CurrentUser
from storage.audit import record_audit
from storage.db import unit_of_work
from storage.domain import Role
from storage.errors import WardenError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

EVERYONE = (Role.moderator, Role.annotator, Role.engineer, Role.admin)
REVIEWERS = EVERYONE
UPLOADERS = (Role.moderator, Role.engineer, Role.admin)
ENGINEERS = (Role.engineer, Role.admin)
ADMINS = (Role.admin,)

# Which tabs each role sees; the handlers behind them enforce the same sets.
TAB_ROLES: dict[str, tuple[Role, ...]] = {
    "review": REVIEWERS,
    "queue": EVERYONE,
    "upload": UPLOADERS,
    "dashboard": ENGINEERS,
    "models": ENGINEERS,
    "audit": ADMINS,
}


def inert(message: str) -> str:
    """Toasts render HTML tags: keep angle brackets in messages from being markup."""
    return message.replace("<", "\u2039").replace(">", "\u203a")


SESSION_ENDED = "Your session has ended; log in again."


def current_user(ctx: AppContext, request: gr.Request | None) -> CurrentUser:
    """The user of the request's session, checked against the database on every call."""
    cookies = getattr(request, "cookies", None) if request is not None else None
    user = ctx.session_user((cookies or {}).get(SESSION_COOKIE))
    if user is None:
        raise gr.Error(SESSION_ENDED, print_exception=False)
    return user


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


def refused(handler: str, username: str | None, message: str) -> gr.Error:
    """Log a refused handler call in one line and return the error to raise (no traceback:
    Gradio prints one for every `gr.Error` unless told not to)."""
    log.warning(
        "refused handler=%s user=%s reason=%s",
        handler,
        _one_line(username or "-"),
        _one_line(message),
    )
    return gr.Error(message, print_exception=False)


def requires(ctx: AppContext, *roles: Role) -> Callable[[F], F]:
    allowed = frozenset(roles)

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        if "request" not in sig.parameters:
            raise TypeError(f"{fn.__name__} needs a `request: gr.Request` parameter")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind_partial(*args, **kwargs)
            request = bound.arguments.get("request")
            try:
                user = current_user(ctx, request)
            except gr.Error as exc:
                who = getattr(request, "username", None)
                raise refused(fn.__name__, who, exc.message) from None
            if user.role not in allowed:
                try:
                    with unit_of_work(ctx.engine) as s:
                        record_audit(
                            s,
                            user.username,
                            "access_denied",
                            endpoint=fn.__name__,
                            role=str(user.role),
                        )
                except Exception:  # refusing must not depend on the audit write
                    log.exception("could not audit a refused call")
                message = f"Not permitted for role {user.role.value}."
                raise refused(fn.__name__, user.username, message)
            try:
                return fn(*args, **kwargs)
            except WardenError as exc:
                raise refused(fn.__name__, user.username, inert(str(exc))) from None
            except gr.Error as exc:  # the handler's own refusal: keep its title and duration
                refused(fn.__name__, user.username, exc.message)
                exc.print_exception = False
                raise

        return wrapper  # type: ignore[return-value]

    return decorate
