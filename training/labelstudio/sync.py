"""Push items to Label Studio and pull annotations back as decisions, through the outbox.

Push: selected items get a `labelstudio_tasks` row each and are enqueued in batches (topic
`ls.push`) in the same unit of work, so a push is either fully queued or not at all. Delivery
stamps the rows' `pushed_at` (committed) *before* sending: if a batch is ever claimed again
with stamped rows but no task ids, the previous send may have reached Label Studio with its
answer lost, so the project is asked which `warden_push` ids it already holds, and only the
rest is imported. Every task arrives once.

Media: a project whose config shows every medium (training.labelstudio.project) gets every
image of a post / sampled frame of a video (`images`, signed URLs like the cover's, or data
URIs) and a `media` text naming each with its timestamp and OCR text; a cover-only project
gets `image` as before. Pre-annotations: the model's categories and, for a project with the
regions control, its evidence boxes (training.labelstudio.regions: every medium's, at its
`item_index`, or the cover's); an annotation's boxes come back with its decision
(`meta["regions"]`, pixels of their image, with its `position`; malformed ones dropped and
counted).

Pull: an annotation becomes a decision with `source=label_studio`, the annotator's email as
reviewer, and `external_ref = ls:<project>:<annotation>:<updated_at>`; an update is a new
ref that supersedes the previous version, a replay is a no-op (the ledger is idempotent on
the ref), an out-of-order older version is ignored, and a deletion is a retract decision
(`ls:<project>:<annotation>:deleted`). Annotations by several annotators of one push
(overlap, or duplicate tasks that carry the same `warden_push` id) are parallel ratings, none
superseding another; curation votes over them and agreement counts each. Webhook events are
recorded at once; when that fails they wait in the outbox (`ls.event`). `reconcile` lists
every task with its annotations and converts all of them (catching whatever webhooks missed),
retracting annotations that disappeared. When Label Studio is down, push and pull messages
stay pending and are retried with exponential backoff by `deliver` (called by the CLI and by
`serve-webhook`'s loop); every push delivers the batches waiting from earlier pushes, even when
it selects nothing new. After `max_attempts` failures a message is dead until an operator
requeues it (`warden labelstudio outbox list|retry`).

    report = push(settings, engine, budget=200)
    deliver(settings, engine)        # drain what is due
    pull(settings, engine)           # reconcile now
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from storage import outbox
from storage.blobs import BlobStore
from storage.db import unit_of_work
from storage.decisions import record_decision
from storage.domain import DecisionAction, DecisionSource
from storage.errors import WardenError
from storage.media import Medium, media_for
from storage.models import Blob, Item, LabelStudioTask, OutboxMessage, Prediction, utcnow
from storage.models import Decision as DecisionRow
from storage.policy import SAFE, Policy, load_policy
from storage.settings import Settings
from training.labelstudio import project as ls_project
from training.labelstudio import regions as ls_regions
from training.labelstudio.client import LabelStudioClient, LabelStudioDown, connect
from training.labelstudio.select import STRATEGIES, Selected, restricted_hit, select_items
from training.labelstudio.signing import image_data_uri, signed_image_url

log = logging.getLogger(__name__)

TOPIC_PUSH = "ls.push"
TOPIC_PULL = "ls.pull"
TOPIC_EVENT = "ls.event"
TOPICS = (TOPIC_PUSH, TOPIC_PULL, TOPIC_EVENT)
IMAGE_URL_TTL_S = 14 * 86400  # annotators may open a task days after the push
MEDIA_OCR_CHARS = 300  # of each medium's OCR text in the task's `media` text
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")
DELETE_ACTION = "ANNOTATIONS_DELETED"


# --- helpers --------------------------------------------------------------------------------


def _policy(settings: Settings, policy: Policy | None) -> Policy:
    return policy if policy is not None else load_policy(settings.policy_path)


def _norm_ts(value: Any) -> str:
    """One spelling of Label Studio's timestamps, whichever path (webhook, API) brought it."""
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def annotation_ref(project_id: int, annotation_id: int, updated_at: Any) -> str:
    return f"ls:{int(project_id)}:{int(annotation_id)}:{_norm_ts(updated_at)}"


def _ref_prefix(project_id: int, annotation_id: int | None = None) -> str:
    return f"ls:{int(project_id)}:" + ("" if annotation_id is None else f"{int(annotation_id)}:")


# --- push -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushReport:
    project_id: int
    selected: int
    batches: int
    by_strategy: dict[str, int]
    delivered: DeliveryReport | None = None


def enqueue_push(
    session: Session,
    project_id: int,
    selected: list[Selected],
    *,
    batch_size: int = 100,
    image_mode: str = "url",
) -> int:
    """Record the task rows and their outbox batches; returns the number of batches."""
    if image_mode not in ("url", "data"):
        raise WardenError(f"image mode must be 'url' or 'data', not {image_mode!r}")
    round_of: dict[int, int] = {}
    for item_id, rnd in session.execute(
        select(LabelStudioTask.item_id, LabelStudioTask.round).where(
            LabelStudioTask.project_id == project_id,
            LabelStudioTask.item_id.in_([s.item_id for s in selected]),
        )
    ):
        round_of[int(item_id)] = max(round_of.get(int(item_id), 0), int(rnd))
    rows = [
        LabelStudioTask(
            item_id=s.item_id,
            project_id=project_id,
            strategy=s.strategy,
            round=round_of.get(s.item_id, 0) + 1,
        )
        for s in selected
    ]
    session.add_all(rows)
    session.flush()
    batches = 0
    for start in range(0, len(rows), max(1, batch_size)):
        chunk = [r.id for r in rows[start : start + batch_size]]
        outbox.enqueue(
            session,
            TOPIC_PUSH,
            f"{TOPIC_PUSH}:{project_id}:{chunk[0]}-{chunk[-1]}",
            {"project_id": project_id, "rows": chunk, "image_mode": image_mode},
        )
        batches += 1
    return batches


def push(
    settings: Settings,
    engine: Engine,
    *,
    budget: int,
    strategies: tuple[str, ...] = STRATEGIES,
    audit_pct: float = 10.0,
    batch_size: int = 100,
    rereview: bool = False,
    image_mode: str = "url",
    seed: int | None = None,
    policy: Policy | None = None,
    client: LabelStudioClient | None = None,
    deliver_now: bool = True,
) -> PushReport:
    """Select up to `budget` items, queue them, and (by default) deliver every push batch that
    is due: those waiting from earlier pushes (an outage) first, then the new ones, even when
    nothing new was selected. Label Studio being down is not an error here: the batches wait
    in the outbox."""
    policy = _policy(settings, policy)
    pid = ls_project.project_id(settings)
    with unit_of_work(engine) as s:
        picked = select_items(
            s,
            policy,
            project_id=pid,
            budget=budget,
            strategies=strategies,
            audit_pct=audit_pct,
            rereview=rereview,
            seed=seed,
        )
        batches = enqueue_push(s, pid, picked, batch_size=batch_size, image_mode=image_mode)
    counts: dict[str, int] = {}
    for p in picked:
        counts[p.strategy] = counts.get(p.strategy, 0) + 1
    delivered = None
    if deliver_now and (batches or _pending(engine, TOPIC_PUSH)):
        delivered = deliver(settings, engine, client=client, topics=(TOPIC_PUSH,), policy=policy)
    return PushReport(pid, len(picked), batches, counts, delivered)


def _image_refs(
    settings: Settings,
    session: Session,
    store: BlobStore,
    item: Item,
    media: list[Medium],
    image_mode: str,
) -> list[str]:
    """What Label Studio loads for each medium: a signed URL of the view, or its data URI."""
    refs = []
    for m in media:
        if image_mode != "data":
            refs.append(
                signed_image_url(settings, item.id, ttl_s=IMAGE_URL_TTL_S, medium=m.position)
            )
            continue
        if m.position == ls_regions.COVER:  # the route's cover: the item's own view
            sha = item.view_sha256 or item.blob_sha256
            mime = "image/png" if item.view_sha256 else item.blob.mime
        else:
            sha = m.image_sha256
            blob = None if m.view_sha256 else session.get(Blob, m.blob_sha256)
            mime = blob.mime if blob is not None else "image/png"
        refs.append(image_data_uri(store.read_bytes(sha), mime))
    return refs


def media_text(media: list[Medium]) -> str:
    """One line per medium for the annotator: which image or frame, when, and its OCR text
    (shown by a Text tag: plain text, whatever it holds)."""
    lines = []
    for m in media:
        if m.kind == "frame":
            line = f"Frame {m.position + 1} of {len(media)}"
            if m.timestamp_s is not None:
                line += f", at {m.timestamp_s:.1f} s"
        else:
            line = f"Image {m.position + 1} of {len(media)}"
        ocr = " ".join((m.ocr_text or "").split())
        if ocr:
            cut = ocr[:MEDIA_OCR_CHARS] + ("…" if len(ocr) > MEDIA_OCR_CHARS else "")
            line += f". Text in it: {cut}"
        lines.append(line)
    return "\n".join(lines)


def _task_payload(
    policy: Policy,
    row: LabelStudioTask,
    item: Item,
    pred: Prediction | None,
    images: list[str],
    *,
    media: list[Medium] | None = None,
    boxes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The task: data (the cover image; with `media`, every image / frame and the text naming
    them; the posted text, scores, Warden ids) and the model's prediction as pre-annotations:
    its categories and, when `boxes`, its evidence boxes (every medium's with `media`, else
    the cover's)."""
    exported = set(ls_project.exported_categories(policy))
    scores = {
        k: round(float(v), 4) for k, v in (pred.scores if pred else {}).items() if k in exported
    }
    data: dict[str, Any] = {
        "image": images[0],
        "text": item.text or "",
        "warden_item_id": item.id,
        "warden_push": row.id,
        "warden_round": row.round,
        "warden_strategy": row.strategy,
        "scores": scores,
    }
    if media is not None:
        data["images"] = images
        data[ls_project.MEDIA_TEXT] = media_text(media)
    task: dict[str, Any] = {"data": data}
    if pred is not None:
        flagged = [c for c in policy.flagged(pred.scores) if c in exported]
        data["model_version"] = pred.model_version
        task["predictions"] = [
            {
                "model_version": pred.model_version,
                "score": max(scores.values(), default=0.0),
                "result": [
                    {
                        "from_name": ls_project.CHOICES,
                        "to_name": ls_project.IMAGE,
                        "type": "choices",
                        "value": {"choices": flagged or [SAFE]},
                    },
                    *ls_regions.to_ls_results(
                        boxes or [],
                        from_name=ls_project.REGIONS,
                        to_name=ls_project.IMAGE,
                        media_count=len(media) if media is not None else None,
                    ),
                ],
            }
        ]
    return task


def _project_shape(client: LabelStudioClient, project_id: int) -> tuple[bool, bool]:
    """(has the regions control, shows every medium) of the project's current config."""
    project = client.get_project(project_id)
    config = (project or {}).get("label_config")
    return (
        ls_project.REGIONS in ls_project.config_values(config),
        ls_project.shows_all_media(config),
    )


def _deliver_push(
    settings: Settings,
    engine: Engine,
    client: LabelStudioClient,
    policy: Policy,
    msg: outbox.OutboxItem,
) -> dict[str, Any]:
    pid = int(msg.payload["project_id"])
    store = BlobStore(settings.blobs_path)
    with unit_of_work(engine) as s:
        rows = list(
            s.scalars(select(LabelStudioTask).where(LabelStudioTask.id.in_(msg.payload["rows"])))
        )
        todo = [r for r in rows if r.task_id is None]
        # Evidence boxes go out only to a project whose config has the regions control (set
        # up by another machine, or with --no-regions, it may not), and every medium only to
        # one that shows them: asked, not assumed.
        regions, all_media = _project_shape(client, pid) if todo else (False, False)
        image_mode = msg.payload.get("image_mode", "url")
        maybe_sent = [r.id for r in todo if r.pushed_at is not None]
        # One query for the batch's media (an item without media rows reads as its own image).
        media_by_item = media_for(s, [r.item_id for r in todo])
        tasks: dict[int, dict[str, Any]] = {}
        withheld: list[int] = []
        for r in todo:
            item = s.get(Item, r.item_id)
            pred = s.scalar(
                select(Prediction)
                .where(Prediction.item_id == r.item_id)
                .order_by(Prediction.id.desc())
                .limit(1)
            )
            decided = [
                c
                for cats in s.scalars(
                    select(DecisionRow.categories).where(DecisionRow.item_id == r.item_id)
                )
                for c in (cats or [])
            ]
            # Checked again at send time: a restricted decision may have come in since.
            if item is None or restricted_hit(policy, pred.scores if pred else {}, decided):
                withheld.append(r.id)
                continue
            media = media_by_item[item.id]
            shown = media if all_media else media[:1]
            tasks[r.id] = _task_payload(
                policy,
                r,
                item,
                pred,
                _image_refs(settings, s, store, item, shown, image_mode),
                media=media if all_media else None,
                boxes=ls_regions.evidence_boxes(s, policy, item, pred, media) if regions else [],
            )
        for r in rows:
            if r.id in withheld:
                s.delete(r)
    found: dict[int, int] = {}
    if maybe_sent:
        found = client.tasks_by_push_id(pid, min(maybe_sent), max(maybe_sent))
    to_send = [rid for rid in tasks if rid not in found]
    if to_send:
        with unit_of_work(engine) as s:
            now = utcnow()
            for r in s.scalars(select(LabelStudioTask).where(LabelStudioTask.id.in_(to_send))):
                r.pushed_at = now
    ids = client.import_tasks(pid, [tasks[rid] for rid in to_send]) if to_send else []
    if len(ids) != len(to_send):
        raise LabelStudioDown(f"Label Studio returned {len(ids)} task ids for {len(to_send)}")
    assigned = dict(zip(to_send, ids, strict=True)) | {
        rid: tid for rid, tid in found.items() if rid in tasks
    }
    with unit_of_work(engine) as s:
        now = utcnow()
        for r in s.scalars(select(LabelStudioTask).where(LabelStudioTask.id.in_(list(assigned)))):
            r.task_id = assigned[r.id]
            r.pushed_at = r.pushed_at or now
    return {"imported": len(ids), "recovered": len(found), "withheld": len(withheld)}


# --- pull -----------------------------------------------------------------------------------


@dataclass
class PullReport:
    seen: int = 0
    recorded: int = 0
    unchanged: int = 0
    retracted: int = 0
    skipped: int = 0
    regions: int = 0  # boxes recorded with the decisions
    regions_dropped: int = 0  # malformed rectangles left out
    errors: list[str] = field(default_factory=list)


def _parse_result(
    policy: Policy,
    result: Iterable[dict[str, Any]],
    sizes: list[tuple[int, int] | None] | None = None,
) -> tuple[list[str], str | None, dict[str, Any]]:
    """Categories, note and extras from an annotation's result: the regions in pixels of
    their image (`sizes`: each medium's, by position, when a result does not say its own;
    training.labelstudio.regions), how many rectangles were dropped as malformed, ignored
    labels."""
    chosen: list[str] = []
    note: str | None = None
    regions: list[dict[str, Any]] = []
    dropped = 0
    exported = set(ls_project.exported_categories(policy))
    for r in result or []:
        if not isinstance(r, dict):
            continue
        value = r.get("value") or {}
        if r.get("from_name") == ls_project.CHOICES:
            chosen += list(value.get("choices") or [])
        elif r.get("from_name") == ls_project.NOTE:
            text = value.get("text") or []
            note = "\n".join(text if isinstance(text, list) else [str(text)]).strip() or None
        elif r.get("from_name") == ls_project.REGIONS:
            got = ls_regions.from_ls_result(r, None, exported, sizes=sizes or [None])
            if got is None:
                dropped += 1
            else:
                regions += got
    labels = [c for c in chosen if c in exported]
    ignored = [c for c in chosen if c not in exported and c != SAFE]
    extra: dict[str, Any] = {"regions": regions, "ignored_labels": ignored}
    if dropped:
        extra["regions_dropped"] = dropped
        log.warning("dropped %d malformed region(s) of a Label Studio annotation", dropped)
    return labels, note, extra


def _ls_decisions(session: Session, prefix: str) -> list[DecisionRow]:
    return list(
        session.scalars(
            select(DecisionRow)
            .where(
                DecisionRow.source == DecisionSource.label_studio.value,
                DecisionRow.external_ref.like(prefix + "%"),
            )
            .order_by(DecisionRow.id)
        )
    )


def _push_for_task(
    session: Session, project_id: int, task: dict[str, Any]
) -> LabelStudioTask | None:
    """The Warden task row (push) behind a Label Studio task: our own task table first (task
    data is editable in Label Studio), then the `warden_push` id, which also heals a lost
    import answer. Several Label Studio tasks with one `warden_push` id (a re-posted import)
    all map to the same row: they are one Warden task."""
    task_id = int(task["id"]) if task.get("id") is not None else None
    if task_id is not None:
        row = session.scalar(
            select(LabelStudioTask).where(
                LabelStudioTask.project_id == project_id, LabelStudioTask.task_id == task_id
            )
        )
        if row is not None:
            return row
    push_id = (task.get("data") or {}).get("warden_push")
    if push_id is not None:
        row = session.get(LabelStudioTask, int(push_id))
        if row is not None and row.project_id == project_id:
            if row.task_id is None and task_id is not None:
                row.task_id = task_id
            return row
    return None


def _sibling_parent(
    session: Session, project_id: int, row: LabelStudioTask
) -> int | None | Literal["auto"]:
    """What a new annotation of `row` supersedes. Another annotator's annotation of the same
    push (overlap, or a duplicate task of the same `warden_push` id) is a parallel rating,
    not a correction: the new one supersedes what the first of them superseded, so neither
    silently replaces the other and curation votes over both. "auto" when none exists."""
    pulled = session.scalars(
        select(DecisionRow)
        .where(
            DecisionRow.item_id == row.item_id,
            DecisionRow.source == DecisionSource.label_studio.value,
            DecisionRow.external_ref.like(_ref_prefix(project_id) + "%"),
        )
        .order_by(DecisionRow.id)
    )
    for d in pulled:
        if (d.meta or {}).get("warden_push") == row.id:
            return d.supersedes_id
    return "auto"


def record_annotation(
    session: Session,
    policy: Policy,
    *,
    project_id: int,
    task: dict[str, Any],
    annotation: dict[str, Any],
    reviewer: str,
    report: PullReport | None = None,
) -> str:
    """Turn one annotation into a decision; returns recorded | unchanged | skipped. Its boxes
    (and the malformed ones dropped) are added to `report`'s counts."""
    ann_id = int(annotation["id"])
    if annotation.get("was_cancelled"):
        return "skipped"  # the annotator skipped the task: no verdict
    row = _push_for_task(session, project_id, task)
    if row is None:
        log.warning("Label Studio task %s is not a Warden task; ignored", task.get("id"))
        return "skipped"
    item_id = row.item_id
    updated = _norm_ts(annotation.get("updated_at") or annotation.get("created_at"))
    ref = annotation_ref(project_id, ann_id, updated)
    history = _ls_decisions(session, _ref_prefix(project_id, ann_id))
    if any(d.external_ref == ref for d in history):
        return "unchanged"
    if any(d.external_ref.endswith(":deleted") for d in history):
        return "skipped"  # deleted in Label Studio; a late event must not resurrect it
    if any(d.external_ref.split(":", 3)[3] > updated for d in history):
        return "unchanged"  # an older version arriving after a newer one
    item = session.get(Item, item_id)
    sizes = ls_regions.media_sizes(session, item) if item is not None else None
    labels, note, extra = _parse_result(policy, annotation.get("result") or [], sizes)
    record_decision(
        session,
        item_id=item_id,
        categories=labels,
        source=DecisionSource.label_studio,
        reviewer=reviewer,
        note=note,
        policy=policy,
        external_ref=ref,
        supersedes=history[-1].id if history else _sibling_parent(session, project_id, row),
        meta={
            "ls_project": project_id,
            "ls_task": task.get("id"),
            "warden_push": row.id,
            "ls_annotation": ann_id,
            "ls_updated_at": updated,
            "ls_user_id": annotation.get("completed_by"),
            "lead_time_s": annotation.get("lead_time"),
            **extra,
        },
    )
    if report is not None:
        report.regions += len(extra["regions"])
        report.regions_dropped += int(extra.get("regions_dropped", 0))
    return "recorded"


def record_deletion(session: Session, *, project_id: int, annotation_id: int) -> str:
    """A retract decision superseding the annotation's newest decision (if any was pulled)."""
    history = _ls_decisions(session, _ref_prefix(project_id, annotation_id))
    if not history:
        return "skipped"
    if history[-1].action == DecisionAction.retract.value:
        return "unchanged"
    record_decision(
        session,
        item_id=history[-1].item_id,
        categories=[],
        source=DecisionSource.label_studio,
        reviewer=history[-1].reviewer_name,
        note="deleted in Label Studio",
        external_ref=f"{_ref_prefix(project_id, annotation_id)}deleted",
        supersedes=history[-1].id,
        action=DecisionAction.retract,
        meta={"ls_project": project_id, "ls_annotation": annotation_id},
    )
    return "retracted"


class UserDirectory:
    """Label Studio user id -> email, fetched on a miss; `ls-user:<id>` if the server says no."""

    def __init__(self, client: LabelStudioClient | None) -> None:
        self._client = client
        self._map: dict[int, str] = {}

    def name(self, user_id: Any) -> str:
        if user_id is None:
            return "ls-user:unknown"
        if isinstance(user_id, dict):  # some payloads inline the user
            return str(user_id.get("email") or user_id.get("username") or user_id.get("id"))
        uid = int(user_id)
        if uid not in self._map and self._client is not None:
            try:
                self._map.update(self._client.users())
            except WardenError as exc:
                log.warning("cannot resolve Label Studio user %s: %s", uid, exc)
        return self._map.get(uid, f"ls-user:{uid}")


def reconcile(
    settings: Settings,
    engine: Engine,
    client: LabelStudioClient,
    *,
    policy: Policy | None = None,
    project_id: int | None = None,
) -> PullReport:
    """List every task with its annotations and convert all; retract vanished annotations."""
    policy = _policy(settings, policy)
    pid = project_id if project_id is not None else ls_project.project_id(settings)
    users = UserDirectory(client)
    tasks = [t for t in client.iter_tasks(pid, with_annotations=True) if t.get("annotations")]
    report = PullReport()
    live: set[int] = set()
    with unit_of_work(engine) as s:
        for task in tasks:
            for ann in task.get("annotations") or []:
                report.seen += 1
                live.add(int(ann["id"]))
                outcome = record_annotation(
                    s,
                    policy,
                    project_id=pid,
                    task=task,
                    annotation=ann,
                    reviewer=users.name(ann.get("completed_by")),
                    report=report,
                )
                setattr(report, outcome, getattr(report, outcome) + 1)
        known = {int(d.external_ref.split(":")[2]) for d in _ls_decisions(s, _ref_prefix(pid))}
        for ann_id in sorted(known - live):
            if record_deletion(s, project_id=pid, annotation_id=ann_id) == "retracted":
                report.retracted += 1
    return report


def handle_event(
    settings: Settings,
    engine: Engine,
    payload: dict[str, Any],
    *,
    users: UserDirectory,
    policy: Policy | None = None,
    project_id: int | None = None,
) -> PullReport:
    """Record one webhook event (annotation created, updated or deleted). Events for another
    project or of another kind are ignored."""
    report = PullReport()
    action = payload.get("action")
    if action not in ANNOTATION_ACTIONS and action != DELETE_ACTION:
        return report
    policy = _policy(settings, policy)
    pid = project_id if project_id is not None else ls_project.project_id(settings)
    event_project = (payload.get("project") or {}).get("id")
    if event_project is not None and int(event_project) != pid:
        return report
    with unit_of_work(engine) as s:
        if action in ANNOTATION_ACTIONS:
            anns = payload.get("annotation")
            anns = anns if isinstance(anns, list) else [anns] if anns else []
            tasks = payload.get("task")
            tasks = tasks if isinstance(tasks, list) else [tasks] if tasks else []
            by_id = {int(t["id"]): t for t in tasks if t and t.get("id") is not None}
            for ann in anns:
                report.seen += 1
                tid = ann.get("task")
                task = by_id.get(int(tid)) if tid is not None else None
                task = task or {"id": tid, "data": {}}
                outcome = record_annotation(
                    s,
                    policy,
                    project_id=pid,
                    task=task,
                    annotation=ann,
                    reviewer=users.name(ann.get("completed_by")),
                    report=report,
                )
                setattr(report, outcome, getattr(report, outcome) + 1)
        elif action == DELETE_ACTION:
            for ann in payload.get("annotations") or []:
                report.seen += 1
                outcome = record_deletion(s, project_id=pid, annotation_id=int(ann["id"]))
                setattr(report, outcome, getattr(report, outcome) + 1)
    return report


def request_pull(engine: Engine, project_id: int) -> int:
    """Queue a reconcile unless one is already waiting (so a loop cannot pile them up)."""
    with unit_of_work(engine) as s:
        waiting = s.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.topic == TOPIC_PULL,
                OutboxMessage.status == "pending",
                OutboxMessage.key.like(f"{TOPIC_PULL}:{project_id}:%"),
            )
        )
        if waiting is not None:
            return int(waiting)
        key = f"{TOPIC_PULL}:{project_id}:{utcnow().strftime('%Y%m%dT%H%M%S.%f')}"
        return outbox.enqueue(s, TOPIC_PULL, key, {"project_id": project_id})


def pull(
    settings: Settings,
    engine: Engine,
    *,
    client: LabelStudioClient | None = None,
    policy: Policy | None = None,
) -> DeliveryReport:
    """Queue a reconcile and run it now if Label Studio answers (else it waits, retried)."""
    request_pull(engine, ls_project.project_id(settings))
    return deliver(settings, engine, client=client, topics=(TOPIC_PULL,), policy=policy)


# --- delivery -------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    done: int = 0
    failed: int = 0
    last_error: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    pending: int = 0  # messages of the delivered topics still waiting afterwards


def _pending(engine: Engine, *topics: str) -> int:
    with unit_of_work(engine) as s:
        return sum(outbox.backlog(s, t)["pending"] for t in topics)


def deliver(
    settings: Settings,
    engine: Engine,
    *,
    client: LabelStudioClient | None = None,
    topics: tuple[str, ...] = TOPICS,
    policy: Policy | None = None,
    limit: int = 1000,
    base_delay_s: float = 2.0,
    max_attempts: int = 50,
    after_message: Callable[[outbox.OutboxItem], None] | None = None,
) -> DeliveryReport:
    """Send every due outbox message of `topics`; failures back off (2 s, 4 s, ... 5 min).

    When Label Studio is unreachable, the remaining due messages of the round are put back
    with a short delay rather than each paying a connect timeout."""
    policy = _policy(settings, policy)
    own = client is None
    client = client or connect(settings.labelstudio)
    report = DeliveryReport()
    users = UserDirectory(client)
    try:
        for topic in topics:
            with unit_of_work(engine) as s:
                due = outbox.claim_due(s, topic, limit=limit, lease_s=120)
            down: str | None = None
            for msg in due:
                if down is not None:
                    with unit_of_work(engine) as s:
                        outbox.mark_failed(
                            s, msg.id, down, base_delay_s=base_delay_s, max_attempts=max_attempts
                        )
                    report.failed += 1
                    continue
                try:
                    result = _deliver_one(settings, engine, client, policy, users, msg)
                except WardenError as exc:
                    report.failed += 1
                    report.last_error = str(exc)
                    if isinstance(exc, LabelStudioDown):
                        down = str(exc)
                    log.warning("outbox %s %s failed: %s", msg.topic, msg.key, exc)
                    with unit_of_work(engine) as s:
                        outbox.mark_failed(
                            s,
                            msg.id,
                            str(exc),
                            base_delay_s=base_delay_s,
                            max_attempts=max_attempts,
                        )
                else:
                    with unit_of_work(engine) as s:
                        outbox.mark_done(s, msg.id, result)
                    report.done += 1
                    report.results.append(result)
                if after_message is not None:
                    after_message(msg)
    finally:
        if own:
            client.close()
    report.pending = _pending(engine, *topics)
    return report


def _pull_result(r: PullReport) -> dict[str, Any]:
    out = {"seen": r.seen, "recorded": r.recorded, "retracted": r.retracted}
    if r.regions or r.regions_dropped:
        out |= {"regions": r.regions, "regions_dropped": r.regions_dropped}
    return out


def _deliver_one(
    settings: Settings,
    engine: Engine,
    client: LabelStudioClient,
    policy: Policy,
    users: UserDirectory,
    msg: outbox.OutboxItem,
) -> dict[str, Any]:
    if msg.topic == TOPIC_PUSH:
        return _deliver_push(settings, engine, client, policy, msg)
    if msg.topic == TOPIC_PULL:
        r = reconcile(
            settings, engine, client, policy=policy, project_id=int(msg.payload["project_id"])
        )
        return _pull_result(r)
    if msg.topic == TOPIC_EVENT:
        r = handle_event(settings, engine, msg.payload, users=users, policy=policy)
        return _pull_result(r)
    raise WardenError(f"unknown Label Studio outbox topic {msg.topic!r}")
