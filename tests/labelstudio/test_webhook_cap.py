"""The webhook receiver caps the body while reading it: a chunked body (no Content-Length) over
the cap gets 413 before the sender has sent it all; ordinary deliveries, chunked or not, still
work. A real `warden labelstudio serve-webhook` process on SQLite and PostgreSQL, raw HTTP over
a socket; Label Studio itself is not needed."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy import select as sql_select

from storage.db import unit_of_work
from storage.models import OutboxMessage
from tests.labelstudio.conftest import WEBHOOK_SECRET
from training.labelstudio.server import free_port
from training.labelstudio.sync import TOPIC_EVENT
from training.labelstudio.webhook import MAX_BODY_BYTES

PATH = "/hooks/labelstudio"
OFFERED = 16 * MAX_BODY_BYTES  # what an oversized sender would push if nothing stopped it


@pytest.fixture
def receiver(db_url: str, tmp_path: Path) -> Iterator[int]:
    """`warden labelstudio serve-webhook` in its own process; yields its port."""
    port = free_port()
    env = {
        **os.environ,
        "WARDEN_DATABASE_URL": db_url,
        "WARDEN_DATA_DIR": str(tmp_path / "data"),
        "WARDEN_LABELSTUDIO__WEBHOOK_SECRET": WEBHOOK_SECRET,
        "WARDEN_LABELSTUDIO__URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "labelstudio", "serve-webhook", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("webhook receiver did not start") from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _read_status(sock: socket.socket) -> tuple[int, bytes]:
    """Status code and whole answer (the server closes or answers with a Content-Length)."""
    data = b""
    sock.settimeout(30)
    while True:
        try:
            part = sock.recv(65536)
        except ConnectionResetError:
            break
        if not part:
            break
        data += part
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                break
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


def _post_chunked(port: int, chunks: Iterator[bytes], secret: str = WEBHOOK_SECRET):
    """POST with Transfer-Encoding: chunked; stops sending as soon as the server answers or
    stops taking bytes. Returns (status, answer body, body bytes sent, whole body sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"X-Warden-Webhook-Secret: {secret}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sock.sendall(head.encode())
    sent, complete = 0, True
    for chunk in chunks:
        answered, _, _ = select.select([sock], [], [], 0)
        if answered:
            complete = False
            break
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            complete = False  # the server stopped reading
            break
        sent += len(chunk)
    if complete:
        sock.sendall(b"0\r\n\r\n")
    try:
        status, answer = _read_status(sock)
    finally:
        sock.close()
    return status, answer, sent, complete


def _big_body() -> Iterator[bytes]:
    yield b'{"action": "ANNOTATION_CREATED", "pad": "'
    block = b"x" * 65536
    for _ in range(OFFERED // len(block)):
        yield block
    yield b'"}'


def test_chunked_body_over_the_cap_is_refused_unread(receiver: int) -> None:
    status, answer, sent, complete = _post_chunked(receiver, _big_body())
    assert status == 413 and json.loads(answer) == {"error": "body too large"}
    assert not complete
    # The server stopped at the cap: what the sender got through is the cap plus what the
    # loopback socket buffers hold, far short of the whole body.
    assert sent < OFFERED // 2, f"{sent} of {OFFERED} bytes were taken"


def test_content_length_over_the_cap_is_refused_before_the_body(receiver: int) -> None:
    sock = socket.create_connection(("127.0.0.1", receiver), timeout=10)
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"X-Warden-Webhook-Secret: {WEBHOOK_SECRET}\r\nContent-Length: {OFFERED}\r\n\r\n"
    )
    sock.sendall(head.encode())  # no body byte at all: the answer must not wait for it
    try:
        status, _ = _read_status(sock)
    finally:
        sock.close()
    assert status == 413


def test_ordinary_deliveries_still_work(receiver: int, engine: Engine) -> None:
    # An event of another kind, chunked in small pieces: read whole, accepted, ignored.
    body = json.dumps({"action": "PROJECT_UPDATED", "project": {"id": 1}}).encode()
    pieces = iter([body[i : i + 7] for i in range(0, len(body), 7)])
    status, answer, _, complete = _post_chunked(receiver, pieces)
    assert complete and status == 200 and json.loads(answer)["seen"] == 0
    # An annotation with no Label Studio project set up yet: kept in the outbox, whole.
    event = {"action": "ANNOTATION_CREATED", "annotation": {"id": 5, "task": 9}, "pad": "y" * 4096}
    data = json.dumps(event).encode()
    status, answer, _, complete = _post_chunked(
        receiver, iter([data[i : i + 1000] for i in range(0, len(data), 1000)])
    )
    assert complete and status == 202 and json.loads(answer) == {"queued": True}
    with unit_of_work(engine) as s:
        payloads = s.scalars(
            sql_select(OutboxMessage.payload).where(OutboxMessage.topic == TOPIC_EVENT)
        ).all()
    assert payloads == [event]
    # A wrong secret is still refused.
    status, _, _, _ = _post_chunked(receiver, iter([body]), secret="wrong")
    assert status == 401
