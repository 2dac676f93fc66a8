"""Content-Security-Policy for the workbench: what Gradio 6's page needs, and nothing more.

Measured on the served page (Gradio 6.31, real Chromium, tests/app/test_csp.py):
- scripts: five inline `<script>` blocks in the page (the config, with per-page values, so no
  fixed hash fits) and one module script; the frontend then loads its chunks with `import()`
  and inserts the `head` we pass (app.ui: the keyboard script) as new script elements. So each
  page gets a fresh nonce on its `<script>` tags and `'strict-dynamic'` lets those scripts load
  the rest, so no `'unsafe-inline'` for scripts: markup injected into the page cannot run.
  Gradio compiles the client-side `js=` of events (app/tabs/review.py's keyboard flow) with
  `new Function`, which needs `'unsafe-eval'`; those strings are ours, never user data.
- `<base href>`: Gradio sets the document's base URI to its mount path: `base-uri 'self'`.
- styles: Svelte sets `style` attributes and inserts `<style>` elements at run time, which no
  nonce can cover: `style-src 'self' 'unsafe-inline'` (styles cannot run code).
- images: our `/img` route, `data:` (icons) and `blob:` (upload previews); fonts: self and
  `data:`; connections (fetch, the SSE queue stream): self only.
Every other HTML response (the login page, any HTML file Gradio might serve) gets a policy with
no script at all.
"""

from __future__ import annotations

import re
import secrets

# No script, no plug-ins, no framing, forms only to us: the login page and any other HTML.
STRICT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_SCRIPT_TAG = re.compile(rb"<script(?=[\s>])", re.IGNORECASE)


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def page_policy(nonce: str) -> str:
    """The policy of the workbench page whose `<script>` tags carry `nonce`."""
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'nonce-{nonce}' 'strict-dynamic' 'unsafe-eval'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "media-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def add_nonce(html: bytes, nonce: str) -> bytes:
    """Every `<script` tag of the page gets the nonce. Markup inside the page's JSON config is
    escaped (`\\u003cscript`), so only real tags match."""
    return _SCRIPT_TAG.sub(b'<script nonce="' + nonce.encode() + b'"', html)
