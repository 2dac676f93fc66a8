"""The Label Studio webhook receiver: annotation events become decisions within a request.

Label Studio (Community) cannot sign bodies; it sends the headers configured on the webhook,
so `setup --webhook-url` registers one carrying `X-Warden-Webhook-Secret`. Other senders may
sign instead: `X-Warden-Signature: sha256=<hex HMAC-SHA256 of the raw body>`. Both are keyed
by `settings.labelstudio.webhook_secret`; without a configured secret every call is refused.
An event that cannot be recorded now (database busy, item unknown yet) is kept in the outbox
(`ls.event`) and retried; the periodic reconcile catches anything Label Studio never sent.

The app mounts `make_webhook_router(settings, engine)` at /hooks/labelstudio;
`process_webhook(...)` is the same logic without FastAPI. Bodies over `MAX_BODY_BYTES` get 413
without being read whole, chunked ones included (counted as they arrive).

Run: warden labelstudio serve-webhook --port 8765   (receiver + outbox/reconcile loop)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from storage import outbox
from storage.db import unit_of_work
from storage.errors import WardenError
from storage.settings import Settings
from training.labelstudio.client import LabelStudioClient
from training.labelstudio.project import WEBHOOK_SECRET_HEADER
from training.labelstudio.sync import TOPIC_EVENT, UserDirectory, handle_event

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Warden-Signature"
MAX_BODY_BYTES = 5 * 1024 * 1024


def sign_body(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def authorised(settings: Settings, headers: Mapping[str, str], body: bytes) -> bool:
    """Shared-secret header or body HMAC, compared in constant time."""
    secret = settings.labelstudio.webhook_secret
    if secret is None or not secret.get_secret_value():
        return False
    key = secret.get_secret_value()
    lower = {k.lower(): v for k, v in headers.items()}
    given = lower.get(WEBHOOK_SECRET_HEADER.lower())
    if given is not None and hmac.compare_digest(given.encode(), key.encode()):
        return True
    sig = lower.get(SIGNATURE_HEADER.lower())
    return sig is not None and hmac.compare_digest(sig.encode(), sign_body(key, body).encode())


def process_webhook(
    settings: Settings,
    engine: Engine,
    headers: Mapping[str, str],
    body: bytes,
    *,
    users: UserDirectory,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) for one delivery; never raises."""
    if len(body) > MAX_BODY_BYTES:
        return 413, {"error": "body too large"}
    if not authorised(settings, headers, body):
        return 401, {"error": "missing or wrong webhook secret"}
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        return 400, {"error": "body is not a JSON object"}
    try:
        report = handle_event(settings, engine, payload, users=users)
    except Exception as exc:  # noqa: BLE001 - kept for retry, never lost
        log.warning(
            "webhook %s not recorded now (%s); queued for retry", payload.get("action"), exc
        )
        digest = hashlib.sha256(body).hexdigest()[:32]
        try:
            with unit_of_work(engine) as s:
                outbox.enqueue(s, TOPIC_EVENT, f"{TOPIC_EVENT}:{digest}", payload)
        except Exception:  # noqa: BLE001
            log.exception("webhook event could not be queued either; reconcile will catch it")
            return 503, {"error": "not recorded; retry later"}
        return 202, {"queued": True}
    return 200, asdict(report)


async def read_capped(request: Request, cap: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed `cap` bytes: from its
    Content-Length, else (chunked transfer encoding has none) while the chunks arrive."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > cap:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            return None
    return bytes(body)


def make_webhook_router(
    settings: Settings, engine: Engine, client: LabelStudioClient | None = None
) -> APIRouter:
    """A FastAPI router with `POST ""` (and "/"): mount it at /hooks/labelstudio."""

    if client is None:
        try:
            from training.labelstudio.client import connect

            client = connect(settings.labelstudio)
        except WardenError:
            client = None  # user ids are then recorded as ls-user:<id>
    users = UserDirectory(client)
    router = APIRouter()

    async def receive(request: Request) -> JSONResponse:
        body = await read_capped(request, MAX_BODY_BYTES)
        if body is None:
            # The rest of the body is never read: the connection is closed after the answer.
            return JSONResponse(
                {"error": "body too large"}, status_code=413, headers={"Connection": "close"}
            )
        status, answer = await run_in_threadpool(
            process_webhook, settings, engine, dict(request.headers), body, users=users
        )
        return JSONResponse(answer, status_code=status)

    router.add_api_route("", receive, methods=["POST"], include_in_schema=False)
    router.add_api_route("/", receive, methods=["POST"], include_in_schema=False)
    return router


def outbox_loop(
    settings: Settings,
    engine: Engine,
    stop: threading.Event,
    *,
    interval_s: float = 5.0,
    reconcile_s: float = 300.0,
) -> None:
    """Deliver due outbox messages every `interval_s` and queue a reconcile every
    `reconcile_s`, until `stop` is set. Errors are logged; the loop keeps going."""
    from training.labelstudio.project import project_id
    from training.labelstudio.sync import deliver, request_pull

    last_reconcile = 0.0
    import time

    while not stop.is_set():
        try:
            if time.monotonic() - last_reconcile >= reconcile_s:
                request_pull(engine, project_id(settings))
                last_reconcile = time.monotonic()
            deliver(settings, engine)
        except WardenError as exc:
            log.warning("Label Studio outbox: %s", exc)
        except Exception:  # noqa: BLE001
            log.exception("Label Studio outbox loop error")
        stop.wait(interval_s)


def serve_webhook(
    settings: Settings, engine: Engine, *, host: str, port: int, reconcile_s: float = 300.0
) -> None:
    """Run the receiver at /hooks/labelstudio with the outbox loop beside it (blocking)."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI(title="Warden Label Studio webhook")
    app.include_router(make_webhook_router(settings, engine), prefix="/hooks/labelstudio")
    stop = threading.Event()
    loop = threading.Thread(
        target=outbox_loop,
        args=(settings, engine, stop),
        kwargs={"reconcile_s": reconcile_s},
        daemon=True,
    )
    loop.start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        stop.set()
        loop.join(10)
