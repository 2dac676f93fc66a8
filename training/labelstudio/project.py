"""The Label Studio project built from the policy, and where Warden remembers it.

The label config has one multi-choice `categories` control (a Choice per non-restricted
category plus "safe"), a `note` TextArea and, behind a flag, `regions` (RectangleLabels over
the image). Restricted categories (child_safety) never appear: that content never leaves
Warden, so an annotator cannot be asked about it.

Where the project id lives: `settings.labelstudio.project_id` when set (teams sharing one
PostgreSQL across machines set it), else `<data_dir>/labelstudio.json`, written by `setup`.
A file rather than a table because it describes one deployment's link to one outside server
(URL, project, webhook), not ledger data; it needs no migration and is easy to inspect or
delete to start over.

Run: warden labelstudio setup [--regions] [--overlap 2] [--webhook-url URL]
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from storage.errors import WardenError
from storage.policy import SAFE, Policy
from storage.settings import Settings
from training.labelstudio.client import LabelStudioClient

log = logging.getLogger(__name__)

STATE_FILE = "labelstudio.json"
CHOICES = "categories"
NOTE = "note"
REGIONS = "regions"
IMAGE = "image"
WEBHOOK_ACTIONS = [
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
]
WEBHOOK_SECRET_HEADER = "X-Warden-Webhook-Secret"


@dataclass(frozen=True)
class ProjectState:
    url: str
    project_id: int
    policy_version: str
    regions: bool = False
    overlap: int = 1
    webhook_id: int | None = None
    webhook_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def state_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / STATE_FILE


def load_state(settings: Settings) -> ProjectState | None:
    path = state_path(settings)
    if not path.exists():
        return None
    try:
        return ProjectState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise WardenError(f"{path} is not a valid Label Studio state file: {exc}") from exc


def save_state(settings: Settings, state: ProjectState) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(tmp, path)


def project_id(settings: Settings) -> int:
    """The configured project id, else the one `setup` saved; WardenError if neither."""
    if settings.labelstudio.project_id is not None:
        return settings.labelstudio.project_id
    state = load_state(settings)
    if state is None:
        raise WardenError("no Label Studio project yet: run `warden labelstudio setup` first")
    return state.project_id


def exported_categories(policy: Policy) -> list[str]:
    """Category ids an annotator may choose: every non-restricted category."""
    return [c.id for c in policy.categories if not c.restricted]


def label_config(policy: Policy, *, regions: bool = False) -> str:
    """The Label Studio XML config for the policy (restricted categories left out)."""
    choices = []
    for c in policy.categories:
        if c.restricted:
            continue
        hint = quoteattr(f"{c.title}: {c.description}")
        choices.append(f"    <Choice value={quoteattr(c.id)} hint={hint}/>")
    choices.append(f'    <Choice value="{SAFE}" hint="No category of the policy applies"/>')
    lines = [
        "<View>",
        f'  <Image name="{IMAGE}" value="$image" zoom="true"/>',
        '  <Text name="text" value="$text"/>',
        '  <Header value="Categories (all that apply; safe if none)"/>',
        f'  <Choices name="{CHOICES}" toName="{IMAGE}" choice="multiple" required="true">',
        *choices,
        "  </Choices>",
    ]
    if regions:
        labels = [
            f"    <Label value={quoteattr(c.id)}/>" for c in policy.categories if not c.restricted
        ]
        lines += [
            f'  <RectangleLabels name="{REGIONS}" toName="{IMAGE}">',
            *labels,
            "  </RectangleLabels>",
        ]
    lines += [
        f'  <TextArea name="{NOTE}" toName="{IMAGE}" placeholder="Note (optional)" '
        'rows="2" maxSubmissions="1" editable="true"/>',
        "</View>",
    ]
    return "\n".join(lines)


def ensure_project(
    client: LabelStudioClient,
    settings: Settings,
    policy: Policy,
    *,
    regions: bool = False,
    overlap: int | None = None,
    title: str | None = None,
) -> ProjectState:
    """Create the project, or update its label config and overlap; save and return the state."""
    overlap = max(1, overlap if overlap is not None else settings.labelstudio.overlap)
    config = label_config(policy, regions=regions)
    fields: dict[str, Any] = {
        "title": title or f"Warden: {policy.name}",
        "description": f"Warden moderation review (policy {policy.version})",
        "label_config": config,
        "maximum_annotations": overlap,
        "show_collab_predictions": True,
    }
    prior = load_state(settings)
    wanted_id = settings.labelstudio.project_id or (prior.project_id if prior else None)
    existing = client.get_project(wanted_id) if wanted_id is not None else None
    if existing is not None:
        client.update_project(wanted_id, **fields)
        pid = int(wanted_id)
        log.info("updated Label Studio project %s", pid)
    else:
        if wanted_id is not None and settings.labelstudio.project_id is not None:
            raise WardenError(
                f"Label Studio project {wanted_id} (WARDEN_LABELSTUDIO__PROJECT_ID) does not "
                f"exist on {client.url}"
            )
        pid = int(client.create_project(**fields)["id"])
        log.info("created Label Studio project %s", pid)
    keep_hook = prior is not None and prior.project_id == pid
    state = ProjectState(
        url=client.url,
        project_id=pid,
        policy_version=policy.version,
        regions=regions,
        overlap=overlap,
        webhook_id=prior.webhook_id if keep_hook and prior else None,
        webhook_url=prior.webhook_url if keep_hook and prior else None,
    )
    save_state(settings, state)
    return state


def ensure_webhook(
    client: LabelStudioClient, settings: Settings, state: ProjectState, url: str
) -> ProjectState:
    """Register (once) the webhook that sends annotation events to Warden's receiver."""
    secret = settings.labelstudio.webhook_secret
    if secret is None or not secret.get_secret_value():
        raise WardenError(
            "set WARDEN_LABELSTUDIO__WEBHOOK_SECRET before registering a webhook: the receiver "
            "refuses unauthenticated calls"
        )
    for hook in client.webhooks(state.project_id):
        if hook.get("url") == url and hook.get("project") == state.project_id:
            client.delete_webhook(int(hook["id"]))  # re-created so headers and actions update
    hook_id = client.create_webhook(
        state.project_id,
        url,
        WEBHOOK_ACTIONS,
        {WEBHOOK_SECRET_HEADER: secret.get_secret_value()},
    )
    new = ProjectState(**{**asdict(state), "webhook_id": hook_id, "webhook_url": url})
    save_state(settings, new)
    return new


def setup(
    settings: Settings,
    *,
    regions: bool = False,
    overlap: int | None = None,
    webhook_url: str | None = None,
    policy: Policy | None = None,
    client: LabelStudioClient | None = None,
) -> ProjectState:
    """Check the connection, create or update the project, register the webhook if asked."""
    from storage.policy import load_policy
    from training.labelstudio.client import connect

    policy = policy or load_policy(settings.policy_path)
    own = client is None
    client = client or connect(settings.labelstudio)
    try:
        client.check()
        state = ensure_project(client, settings, policy, regions=regions, overlap=overlap)
        if webhook_url:
            state = ensure_webhook(client, settings, state, webhook_url)
        return state
    finally:
        if own:
            client.close()
