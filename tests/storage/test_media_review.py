"""The review card's media (storage.media_review): each medium blurred by its own signals and
revealed on its own; a reveal is an audit event naming the medium, under the same lease and
restricted-role checks as a single image; frames of a video come worst first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import make_engine, unit_of_work
from storage.domain import Verdict
from storage.errors import Conflict, NotFound
from storage.ingest import ingest_paths
from storage.media import record_medium_signals
from storage.media_review import media_views, reveal_medium, revealed_positions
from storage.models import AuditEvent
from storage.policy import Policy, load_policy
from storage.queue import claim_next, record_prediction
from storage.review import exposure
from storage.settings import DEFAULT_POLICY, Settings
from storage.users import create_user
from tests.storage.hostile_corpus import _photo, encode

POLICY: Policy = load_policy(DEFAULT_POLICY)


def _post(settings: Settings, root: Path, n: int = 3) -> int:
    root.mkdir(parents=True)
    names = []
    for i in range(n):
        (root / f"p{i}.png").write_bytes(encode(_photo(40 + i), "PNG"))
        names.append(f"p{i}.png")
    (root / "m.jsonl").write_text(json.dumps({"images": names, "text": "post"}) + "\n")
    engine = make_engine(settings.database_url)
    [r] = ingest_paths(engine, settings, [root / "m.jsonl"]).results
    engine.dispose()
    assert r.item_id is not None
    return r.item_id


def _verdict(scores: dict[str, float], evidence: dict | None = None) -> Verdict:
    full = {c: 0.01 for c in POLICY.ids} | scores
    signals: dict = {"nsfw": 0.0}
    if evidence is not None:
        signals["media_evidence"] = evidence
    return Verdict(full, POLICY.flagged(full), "m@1", POLICY.version, 1.0, signals=signals)


def test_each_medium_blurs_and_reveals_on_its_own(tmp_path: Path, settings: Settings) -> None:
    item_id = _post(settings, tmp_path / "in")
    engine = make_engine(settings.database_url)
    graphic = next(c for c in POLICY.categories if c.blur and not c.restricted)
    with unit_of_work(engine) as s:
        create_user(s, "alice", "pw-alice-123456", "moderator", actor="test")
        # Unscored: every medium blurred.
        assert [
            v.blurred for v in media_views(s, item_id, "alice", POLICY, blur_nsfw_threshold=0.4)
        ] == [True] * 3
        # Image 3 alone carries the graphic category; image 2 alone is NSFW.
        per_medium = [{c: 0.01 for c in POLICY.ids} for _ in range(3)]
        per_medium[2][graphic.id] = 0.99
        evidence = {
            "media": [
                {"position": k, "label": f"Image {k + 1}", "scores": sc, "flagged": []}
                for k, sc in enumerate(per_medium)
            ]
        }
        record_prediction(s, item_id, _verdict({graphic.id: 0.99}, evidence))
        for k, nsfw in enumerate((0.01, 0.95, 0.02)):
            record_medium_signals(s, item_id, k, ocr_text=f"text {k}", nsfw_score=nsfw)
    with unit_of_work(engine) as s:
        views = media_views(s, item_id, "alice", POLICY, blur_nsfw_threshold=0.4)
        assert [v.label for v in views] == ["Image 1", "Image 2", "Image 3"]
        assert [v.blurred for v in views] == [False, True, True]
        assert "NSFW 0.95" in views[1].blur_reason and graphic.id in views[2].blur_reason
        # Revealing needs the item held under a live lease.
        with pytest.raises(Conflict):
            reveal_medium(s, "alice", item_id, 2, policy=POLICY)
    with unit_of_work(engine) as s:
        claimed = claim_next(s, "alice", lease_s=60)
        assert claimed is not None and claimed.item_id == item_id
        reveal_medium(s, "alice", item_id, 2, policy=POLICY)
        with pytest.raises(NotFound):
            reveal_medium(s, "alice", item_id, 7, policy=POLICY)
    with unit_of_work(engine) as s:
        views = media_views(s, item_id, "alice", POLICY, blur_nsfw_threshold=0.4)
        assert [(v.blurred, v.revealed, v.show_raw) for v in views] == [
            (False, False, True), (True, False, False), (True, True, True),
        ]  # fmt: skip
        assert revealed_positions(s, "alice", item_id) == {2}
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "reveal")).all()
        assert [(e.actor, e.item_id, e.details.get("position")) for e in events] == [
            ("alice", item_id, 2)
        ]
        assert exposure(s, "alice").reveals_total == 1
        reveal_medium(s, "alice", item_id, 0, policy=POLICY)  # the cover: the plain reveal
        assert revealed_positions(s, "alice", item_id) == {0, 2}
        assert exposure(s, "alice").reveals_total == 2
    engine.dispose()


def test_video_frames_come_worst_first(tmp_path: Path, settings: Settings) -> None:
    from tests.storage._videos import encode_video

    root = tmp_path / "in"
    root.mkdir()
    (root / "clip.mp4").write_bytes(encode_video(36, cut=20))
    limited = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"video_sample_frames": 3})}
    )
    engine = make_engine(settings.database_url)
    [r] = ingest_paths(engine, limited, [root]).results
    assert r.item_id is not None
    cat = POLICY.ids[0]
    worst = [0.1, 0.2, 0.9]  # the last frame is the worst
    evidence = {
        "media": [
            {"position": k, "scores": {c: 0.01 for c in POLICY.ids} | {cat: w}}
            for k, w in enumerate(worst)
        ]
    }
    with unit_of_work(engine) as s:
        record_prediction(s, r.item_id, _verdict({cat: 0.9}, evidence))
    with unit_of_work(engine) as s:
        views = media_views(s, r.item_id, "nobody", POLICY, blur_nsfw_threshold=0.4)
    engine.dispose()
    assert [v.position for v in views] == [2, 1, 0]
    assert all(v.kind == "frame" and v.label.startswith(f"Frame {v.position + 1} (") for v in views)
