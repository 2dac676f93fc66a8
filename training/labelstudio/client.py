"""A thin, typed wrapper over `label-studio-sdk` 2.x: the only module that speaks HTTP to LS.

Every call maps transport failures and HTTP errors to user-facing errors: `LabelStudioDown`
(unreachable, timeout, 5xx; the outbox retries these later) and `WardenError` (bad API key,
missing project, refused request; retrying will not help). Plain dicts come back, so the
rest of the package never sees SDK models.

    client = connect(settings.labelstudio)
    client.check()                       # raises a clear WardenError when down or key wrong
    ids = client.import_tasks(project_id, [{"data": {...}, "predictions": [...]}])
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx

from storage.errors import WardenError
from storage.settings import LabelStudioSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
# Per-request SDK options for calls that are not idempotent: no retry beneath Warden's own.
SEND_ONCE: dict[str, Any] = {"max_retries": 0}


class LabelStudioDown(WardenError):
    """Label Studio could not be reached or failed on its side; the work can be retried."""


class LabelStudioRefused(WardenError):
    """Label Studio answered but refused the request (auth, validation, missing object)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def _dump(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, list):
        return [_dump(o) for o in obj]
    return obj


class LabelStudioClient:
    """Connection to one Label Studio server; cheap to build, holds an httpx pool."""

    def __init__(self, url: str, api_key: str, *, timeout_s: float = 10.0) -> None:
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        self._sdk = LabelStudio(base_url=self.url, api_key=api_key, timeout=timeout_s)

    # --- error mapping ------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn()
        except (httpx.TransportError, ConnectionError) as exc:
            raise LabelStudioDown(
                f"Label Studio at {self.url} is unreachable ({what}): {exc.__class__.__name__}"
            ) from exc
        except ApiError as exc:
            code = exc.status_code or 0
            if code in (401, 403):
                raise LabelStudioRefused(
                    f"Label Studio at {self.url} rejected the API key ({what}, HTTP {code}); "
                    "set WARDEN_LABELSTUDIO__API_KEY to a valid token",
                    code,
                ) from exc
            if code >= 500 or code in (408, 429):
                raise LabelStudioDown(
                    f"Label Studio at {self.url} failed ({what}, HTTP {code})"
                ) from exc
            body = str(exc.body)[:300]
            raise LabelStudioRefused(
                f"Label Studio refused {what} (HTTP {code}): {body}", code
            ) from exc

    # --- identity -----------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Who the API key belongs to; raises LabelStudioDown / LabelStudioRefused."""
        user = self._call("whoami", lambda: self._sdk.users.whoami())
        return {"id": user.id, "email": getattr(user, "email", None), "username": user.username}

    def users(self) -> dict[int, str]:
        """Label Studio user id -> email (or username when the email is empty)."""
        users = self._call("list users", lambda: self._sdk.users.list())
        return {int(u.id): (u.email or u.username) for u in users}

    def create_user(self, email: str, password: str) -> int:
        user = self._call(
            "create user",
            lambda: self._sdk.users.create(username=email, email=email, password=password),
        )
        return int(user.id)

    def user_token(self, user_id: int) -> str | None:
        """An API token of another user (admin only; None when the server hides it)."""
        resp = self._raw("GET", f"/api/users/{user_id}/")
        return resp.get("token") if isinstance(resp, dict) else None

    # --- projects -----------------------------------------------------------------------

    def get_project(self, project_id: int) -> dict[str, Any] | None:
        from label_studio_sdk.core.api_error import ApiError

        try:
            return _dump(self._call("get project", lambda: self._sdk.projects.get(project_id)))
        except LabelStudioRefused as exc:
            if exc.status_code == 404 or (
                isinstance(exc.__cause__, ApiError) and exc.__cause__.status_code == 404
            ):
                return None
            raise

    def create_project(self, **fields: Any) -> dict[str, Any]:
        return _dump(self._call("create project", lambda: self._sdk.projects.create(**fields)))

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return _dump(
            self._call("update project", lambda: self._sdk.projects.update(project_id, **fields))
        )

    # --- tasks --------------------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        """Import tasks (with inline predictions); returns the new task ids in order.

        Sent exactly once: the SDK's own retries (on connection errors and 5xx) are off here,
        because a re-post after Label Studio committed the import but the answer was lost
        creates every task twice. The outbox retries instead, and recovers such a batch by
        its `warden_push` ids (see `tasks_by_push_id`)."""
        resp = self._call(
            "import tasks",
            lambda: self._sdk.projects.import_tasks(
                project_id, request=tasks, return_task_ids=True, request_options=SEND_ONCE
            ),
        )
        ids = getattr(resp, "task_ids", None)
        if ids is None and isinstance(resp, dict):
            ids = resp.get("task_ids")
        return [int(i) for i in ids or []]

    def iter_tasks(
        self,
        project_id: int,
        *,
        only_annotated: bool = False,
        with_annotations: bool = False,
        page_size: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Every task of the project as a dict (data, and annotations when asked)."""
        page = 1
        while True:
            params: dict[str, Any] = {"project": project_id, "page": page, "page_size": page_size}
            if only_annotated:
                params["only_annotated"] = "true"
            params["fields"] = "all" if with_annotations else "task_only"
            resp = self._raw("GET", "/api/tasks/", params=params, allow_404=True)
            if resp is None:
                return
            tasks = resp.get("tasks", []) if isinstance(resp, dict) else resp
            yield from tasks
            total = resp.get("total", 0) if isinstance(resp, dict) else len(tasks)
            if not tasks or page * page_size >= total:
                return
            page += 1

    def tasks_by_push_id(self, project_id: int, low: int, high: int) -> dict[int, int]:
        """Tasks whose data.warden_push lies in [low, high]: warden_push -> task id. Used
        before re-sending a batch whose earlier answer may have been lost."""
        query = json.dumps(
            {
                "filters": {
                    "conjunction": "and",
                    "items": [
                        {
                            "filter": "filter:tasks:data.warden_push",
                            "operator": "in",
                            "type": "Number",
                            "value": {"min": low, "max": high},
                        }
                    ],
                }
            }
        )
        found: dict[int, int] = {}
        page = 1
        while True:
            resp = self._raw(
                "GET",
                "/api/tasks/",
                params={
                    "project": project_id,
                    "query": query,
                    "fields": "task_only",
                    "page": page,
                    "page_size": 500,
                },
                allow_404=True,
            )
            tasks = (resp or {}).get("tasks", [])
            for t in tasks:
                push = (t.get("data") or {}).get("warden_push")
                if push is not None:
                    # Keep the first task per push id if several exist (earliest wins).
                    found.setdefault(int(push), int(t["id"]))
            if not tasks or page * 500 >= (resp or {}).get("total", 0):
                return found
            page += 1

    def task_annotations(self, task_id: int) -> list[dict[str, Any]]:
        return _dump(self._call("list annotations", lambda: self._sdk.annotations.list(task_id)))

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **kw: Any) -> int:
        ann = self._call(
            "create annotation",
            lambda: self._sdk.annotations.create(task_id, result=result, **kw),
        )
        return int(ann.id)

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]]) -> None:
        self._call(
            "update annotation",
            lambda: self._sdk.annotations.update(annotation_id, result=result),
        )

    def delete_annotation(self, annotation_id: int) -> None:
        self._call("delete annotation", lambda: self._sdk.annotations.delete(annotation_id))

    # --- webhooks -----------------------------------------------------------------------

    def webhooks(self, project_id: int | None = None) -> list[dict[str, Any]]:
        hooks = _dump(self._call("list webhooks", lambda: self._sdk.webhooks.list()))
        if project_id is None:
            return hooks
        return [h for h in hooks if h.get("project") in (None, project_id)]

    def create_webhook(
        self, project_id: int, url: str, actions: list[str], headers: dict[str, str]
    ) -> int:
        hook = self._call(
            "create webhook",
            lambda: self._sdk.webhooks.create(
                url=url,
                project=project_id,
                actions=actions,
                headers=headers,
                send_payload=True,
                send_for_all_actions=False,
                is_active=True,
            ),
        )
        return int(hook.id)

    def delete_webhook(self, webhook_id: int) -> None:
        self._call("delete webhook", lambda: self._sdk.webhooks.delete(webhook_id))

    # --- raw ----------------------------------------------------------------------------

    def _raw(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        allow_404: bool = False,
    ) -> Any:
        """An HTTP call through the SDK's own authenticated httpx client, for endpoints whose
        SDK models are stricter than what the Community edition returns."""
        http = self._sdk._client_wrapper.httpx_client

        def go() -> Any:
            return http.request(path.lstrip("/"), method=method, params=params, json=json)

        resp = self._call(f"{method} {path}", go)
        if resp.status_code == 404 and allow_404:
            return None
        if resp.status_code in (401, 403):
            raise LabelStudioRefused(
                f"Label Studio at {self.url} rejected the API key (HTTP {resp.status_code}); "
                "set WARDEN_LABELSTUDIO__API_KEY to a valid token",
                resp.status_code,
            )
        if resp.status_code >= 500:
            raise LabelStudioDown(
                f"Label Studio at {self.url} failed ({method} {path}, HTTP {resp.status_code})"
            )
        if resp.status_code >= 400:
            raise LabelStudioRefused(
                f"Label Studio refused {method} {path} (HTTP {resp.status_code}): "
                f"{resp.text[:300]}",
                resp.status_code,
            )
        return resp.json() if resp.content else None

    def close(self) -> None:
        self._sdk._client_wrapper.httpx_client.httpx_client.close()


def connect(ls: LabelStudioSettings) -> LabelStudioClient:
    """A client from settings; WardenError when no API key is configured."""
    if ls.api_key is None or not ls.api_key.get_secret_value():
        raise WardenError(
            "no Label Studio API key: set WARDEN_LABELSTUDIO__API_KEY (Account & Settings -> "
            "Access Token in Label Studio)"
        )
    return LabelStudioClient(ls.url, ls.api_key.get_secret_value(), timeout_s=ls.timeout_s)
