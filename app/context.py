"""What every part of the web app shares: settings, the database engine, the policy, signing.

Built once per process by `AppContext.create(settings)`; the tabs and routes receive it
explicitly, never through module globals.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine

from storage.db import make_engine, unit_of_work
from storage.domain import Role
from storage.policy import Policy, load_policy
from storage.settings import Settings
from storage.signing import Signer, load_secret_key

# How long `active_user` trusts its cache (not used for sessions: `session_user` reads the
# database on every call, so a logout or a disabled account takes effect at once everywhere).
USER_CACHE_TTL_S = 2.0
SESSION_COOKIE = "warden_session"


@dataclass(frozen=True)
class CurrentUser:
    username: str
    role: Role
    # The server-side session the request came with ("" when resolved by name only).
    session_id: str = ""


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    policy: Policy
    signer: Signer
    _user_cache: dict[str, tuple[float, CurrentUser | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: Settings, engine: Engine | None = None) -> AppContext:
        engine = engine or make_engine(settings.database_url, settings.db)
        return cls(
            settings=settings,
            engine=engine,
            policy=load_policy(settings.policy_path),
            signer=Signer(load_secret_key(settings)),
        )

    @cached_property
    def blob_store(self):  # -> storage.blobs.BlobStore
        from storage.blobs import BlobStore

        return BlobStore(self.settings.blobs_path)

    def session_user(self, token: str | None) -> CurrentUser | None:
        """The enabled user behind a session cookie, or None: a bad signature, an expired or
        ended session (logout, password or role change, disabled user). One primary-key read
        per call, never cached, so every process sees a revocation on its next request."""
        from storage.sessions import session_user

        claims = self.signer.read_session(token)
        if claims is None:
            return None
        with unit_of_work(self.engine) as s:
            user = session_user(s, claims.session_id)
        if user is None or user.username != claims.username:
            return None
        return CurrentUser(user.username, Role(user.role), claims.session_id)

    def active_user(self, username: str | None) -> CurrentUser | None:
        """The user if they exist and are enabled (cached briefly); None otherwise."""
        if not username:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._user_cache.get(username)
        if hit is not None and now - hit[0] < USER_CACHE_TTL_S:
            return hit[1]
        from storage.errors import NotFound
        from storage.users import get_user

        try:
            with unit_of_work(self.engine) as s:
                info = get_user(s, username)
            user = None if info.disabled else CurrentUser(info.username, Role(info.role))
        except NotFound:
            user = None
        with self._lock:
            self._user_cache[username] = (now, user)
        return user

    def forget_user(self, username: str) -> None:
        with self._lock:
            self._user_cache.pop(username, None)
