"""The Label Studio project built from the policy, and where Warden remembers it.

The label config has one multi-choice `categories` control (a Choice per non-restricted
category plus "safe"), a `note` TextArea and `regions` (RectangleLabels over the image, a Label
per non-restricted category: where the violation is; `--no-regions` leaves it out). Restricted
categories (child_safety) never appear: that content never leaves Warden, so an annotator
cannot be asked about it.

Media: a project shows every image of a post / sampled frame of a video as one image list
(`<Image name="image" valueList="$images">`, a pager under the image; boxes on image k carry
`item_index` k) with a `media` Text naming each ("Image 2 of 3", "Frame 3 of 8, at 1.5 s")
with its OCR text, inert like all content text. Projects set up before that show the cover
only (`$image`). Their tasks carry `image` and no `images`: moved to the list, they would show
no image at all (Label Studio 1.23 accepts the change without checking its tasks' data keys),
so `setup` keeps a cover-only project that holds tasks as it is and says so (`all_media` false
in the state); a new project, or one without tasks yet, gets the list. Push asks the
project's config which kind it is, so both keep working side by side.

Updating an existing project: Label Studio refuses a config that drops a control or a label
its annotations use. `setup` first sends the policy's config as it is; when that is refused,
it sends it again keeping what the project's current config has and the policy no longer
does (the regions control, retired categories, hinted "retired"), so a policy change never
strands a project. Restricted categories are never kept.

Where the project id lives: `settings.labelstudio.project_id` when set (teams sharing one
PostgreSQL across machines set it), else `<data_dir>/labelstudio.json`, written by `setup`.
A file rather than a table because it describes one deployment's link to one outside server
(URL, project, webhook), not ledger data; it needs no migration and is easy to inspect or
delete to start over.

Run: warden labelstudio setup [--no-regions] [--overlap 2] [--webhook-url URL]
"""

from __future__ import annotations

import json
import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from storage.errors import WardenError
from storage.policy import SAFE, Policy
from storage.settings import Settings
from training.labelstudio.client import LabelStudioClient, LabelStudioRefused

log = logging.getLogger(__name__)

STATE_FILE = "labelstudio.json"
CHOICES = "categories"
NOTE = "note"
REGIONS = "regions"
IMAGE = "image"
MEDIA_TEXT = "media"
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
    regions: bool = True
    overlap: int = 1
    webhook_id: int | None = None
    webhook_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Every image / frame as a list (`$images`), or the cover only (`$image`: a project that
    # held tasks before the list existed). State files written before this field read False.
    all_media: bool = False


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


RETIRED_HINT = "retired: not in the current policy"


def label_config(
    policy: Policy,
    *,
    regions: bool = True,
    keep: dict[str, list[str]] | None = None,
    all_media: bool = True,
) -> str:
    """The Label Studio XML config for the policy (restricted categories left out). `keep`:
    values of the `categories` / `regions` controls to keep though the policy lacks them
    (retired categories an existing project's annotations use); restricted ids never.
    `all_media`: every image / frame as a list (`$images`), else the cover only (`$image`)."""
    keep = keep or {}
    restricted = {c.id for c in policy.categories if c.restricted}
    exported = exported_categories(policy)
    choices = []
    for c in policy.categories:
        if c.restricted:
            continue
        hint = quoteattr(f"{c.title}: {c.description}")
        choices.append(f"    <Choice value={quoteattr(c.id)} hint={hint}/>")
    for value in keep.get(CHOICES, []):
        if value not in exported and value != SAFE and value not in restricted:
            choices.append(f"    <Choice value={quoteattr(value)} hint={quoteattr(RETIRED_HINT)}/>")
    choices.append(f'    <Choice value="{SAFE}" hint="No category of the policy applies"/>')
    if all_media:
        # Text, never HyperText: labels and OCR text are content and must stay inert.
        image = [
            f'  <Image name="{IMAGE}" valueList="$images" zoom="true"/>',
            f'  <Text name="{MEDIA_TEXT}" value="${MEDIA_TEXT}"/>',
        ]
    else:
        image = [f'  <Image name="{IMAGE}" value="$image" zoom="true"/>']
    lines = [
        "<View>",
        *image,
        '  <Text name="text" value="$text"/>',
        '  <Header value="Categories (all that apply; safe if none)"/>',
        f'  <Choices name="{CHOICES}" toName="{IMAGE}" choice="multiple" required="true">',
        *choices,
        "  </Choices>",
    ]
    if regions:
        labels = [f"    <Label value={quoteattr(c)}/>" for c in exported]
        labels += [
            f"    <Label value={quoteattr(v)} hint={quoteattr(RETIRED_HINT)}/>"
            for v in keep.get(REGIONS, [])
            if v not in exported and v not in restricted
        ]
        lines += [
            '  <Header value="Where (optional): a box per region, labelled with its category"/>',
            f'  <RectangleLabels name="{REGIONS}" toName="{IMAGE}" strokeWidth="2">',
            *labels,
            "  </RectangleLabels>",
        ]
    lines += [
        f'  <TextArea name="{NOTE}" toName="{IMAGE}" placeholder="Note (optional)" '
        'rows="2" maxSubmissions="1" editable="true"/>',
        "</View>",
    ]
    return "\n".join(lines)


def config_values(xml: str | None) -> dict[str, list[str]]:
    """The values of Warden's `categories` and `regions` controls in a label config (a control
    that is absent has no key); {} when the XML cannot be read."""
    if not xml:
        return {}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    out: dict[str, list[str]] = {}
    for tag, name, child in (("Choices", CHOICES, "Choice"), ("RectangleLabels", REGIONS, "Label")):
        for control in root.iter(tag):
            if control.get("name") == name:
                out[name] = [v for c in control.iter(child) if (v := c.get("value")) is not None]
    return out


def shows_all_media(xml: str | None) -> bool:
    """True when the config's image is a list of every medium (`valueList`), False for the
    cover-only config (or XML that cannot be read)."""
    if not xml:
        return False
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return False
    return any(
        tag.get("name") == IMAGE and tag.get("valueList") is not None for tag in root.iter("Image")
    )


def ensure_project(
    client: LabelStudioClient,
    settings: Settings,
    policy: Policy,
    *,
    regions: bool = True,
    overlap: int | None = None,
    title: str | None = None,
) -> ProjectState:
    """Create the project, or update its label config and overlap (see the module docstring
    for a refused update); save and return the state."""
    overlap = max(1, overlap if overlap is not None else settings.labelstudio.overlap)
    prior = load_state(settings)
    wanted_id = settings.labelstudio.project_id or (prior.project_id if prior else None)
    existing = client.get_project(wanted_id) if wanted_id is not None else None
    all_media = True
    if existing is not None and not shows_all_media(existing.get("label_config")):
        # Its tasks carry `image` only: under `$images` they would show no image. A server
        # that does not say how many tasks it holds is assumed to hold some.
        held = existing.get("task_number")
        all_media = isinstance(held, int) and held == 0
        if not all_media:
            log.warning(
                "Label Studio project %s holds tasks made for the cover image only; it keeps "
                "showing the cover (set up a new project to show every image and frame)",
                wanted_id,
            )
    config = label_config(policy, regions=regions, all_media=all_media)
    fields: dict[str, Any] = {
        "title": title or f"Warden: {policy.name}",
        "description": f"Warden moderation review (policy {policy.version})",
        "label_config": config,
        "maximum_annotations": overlap,
        "show_collab_predictions": True,
    }
    if existing is not None:
        pid = int(wanted_id)
        try:
            client.update_project(pid, **fields)
        except LabelStudioRefused as exc:
            if exc.status_code != 400:
                raise
            current = config_values(existing.get("label_config"))
            regions = regions or REGIONS in current
            fields["label_config"] = label_config(
                policy, regions=regions, keep=current, all_media=all_media
            )
            log.warning(
                "Label Studio refused the policy's config for project %s (its annotations use "
                "what it drops); kept the project's retired labels%s",
                pid,
                " and regions" if REGIONS in current else "",
            )
            client.update_project(pid, **fields)
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
        all_media=all_media,
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
    regions: bool = True,
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
