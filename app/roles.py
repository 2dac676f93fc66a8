"""Role checks inside every Gradio handler.

Gradio lets any logged-in user call any handler over HTTP (hidden buttons protect nothing), so
each handler is wrapped with `requires(ctx, *roles)`: it reads the username Gradio took from the
session (via the server's auth dependency), re-reads the user's role and disabled flag, and
refuses with a `gr.Error` before the handler runs. `WardenError`s become `gr.Error`s with the
same message (user-facing, no traceback).

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

from app.context import AppContext, CurrentUser
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


def current_user(ctx: AppContext, request: gr.Request | None) -> CurrentUser:
    username = getattr(request, "username", None) if request is not None else None
    user = ctx.active_user(username)
    if user is None:
        raise gr.Error("Your session has ended; log in again.")
    return user


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
            user = current_user(ctx, request)
            if user.role not in allowed:
                log.warning("refused %s to %s (%s)", fn.__name__, user.username, user.role)
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
                raise gr.Error(f"Not permitted for role {user.role.value}.")
            try:
                return fn(*args, **kwargs)
            except WardenError as exc:
                raise gr.Error(inert(str(exc))) from exc

        return wrapper  # type: ignore[return-value]

    return decorate
