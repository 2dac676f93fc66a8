"""Keep secrets out of every output: `warden settings`, error messages and log lines.

The secrets are the database URL's password, every `SecretStr` setting (the UI's secret key,
Label Studio's API key and webhook secret, the OpenAI-compatible API key) and a password in any
other URL setting. `masked_settings` is what `warden settings` prints; `mask_text` scrubs any
string; `install_log_masking` adds a filter to the root logger's handlers so no log line of this
process can carry them.

Run: warden settings   (the effective settings, secrets shown as ***)
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, SecretStr

from storage.settings import Settings

MASK = "***"
# Secrets shorter than this are not searched for in free text (masking every "a" would make
# logs unreadable); settings that short are refused or meaningless anyway.
_MIN_SCRUB_CHARS = 4


def mask_url(url: str) -> str:
    """`url` with its password replaced by ***; anything that is not a URL is returned as is."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in url:
        return url
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _mask_userinfo(url)
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)  # renders the password as ***


def _mask_userinfo(url: str) -> str:
    # scheme://user:password@host... for URLs SQLAlchemy does not parse (http, ...).
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not at or ":" not in userinfo or "/" in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{MASK}@{host}"


def _walk(value: Any, found: list[str]) -> None:
    if isinstance(value, SecretStr):
        found.append(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _walk(getattr(value, name), found)
    elif isinstance(value, str) and "://" in value:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            password = make_url(value).password
        except (ArgumentError, ValueError):
            userinfo = value.partition("://")[2].partition("@")
            password = userinfo[0].split(":", 1)[1] if userinfo[1] and ":" in userinfo[0] else None
        if password:
            found.append(str(password))


def secret_values(settings: Settings) -> list[str]:
    """Every secret string the settings hold, longest first (so no part of one is left)."""
    found: list[str] = []
    _walk(settings, found)
    _walk(settings.database_url, found)
    return sorted({s for s in found if len(s) >= _MIN_SCRUB_CHARS}, key=len, reverse=True)


def mask_text(text: str, settings: Settings) -> str:
    """`text` with every secret of `settings` (and every URL password) replaced by ***."""
    from urllib.parse import quote

    for secret in secret_values(settings):
        text = text.replace(secret, MASK)
        # URL-encoded forms appear in rendered URLs.
        encoded = quote(secret, safe="")
        if encoded != secret:
            text = text.replace(encoded, MASK)
    return text


def masked_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-able data, every secret shown as ***, for `warden settings`."""

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, str):
            return mask_text(mask_url(value), settings)
        return value

    data = settings.model_dump(mode="json", by_alias=False)
    # SecretStr dumps as "**********" already; say it the same way as the rest.
    _replace_secret_fields(settings, data)
    out = scrub(data)
    out["database_url"] = mask_url(settings.database_url)
    return out


def _replace_secret_fields(model: BaseModel, data: dict[str, Any]) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            data[name] = MASK
        elif isinstance(value, BaseModel) and isinstance(data.get(name), dict):
            _replace_secret_fields(value, data[name])


class MaskSecretsFilter(logging.Filter):
    """Rewrites each record's message with the settings' secrets masked."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message, self.settings)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text, self.settings)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking(settings: Settings) -> None:
    """Mask secrets in every log line this process writes: a filter on each handler of the
    root logger (the server lets uvicorn's records propagate there instead of configuring
    handlers of its own)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:
        if not any(isinstance(f, MaskSecretsFilter) for f in handler.filters):
            handler.addFilter(MaskSecretsFilter(settings))
