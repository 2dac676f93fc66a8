"""Ingest against a corpus of hostile and broken files, on SQLite and PostgreSQL.

Every input must get a status and a reason, nothing partial may be left behind, hostile names
and text are stored as plain strings, and a second run adds nothing.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.db import make_engine
from storage.ingest import FileResult, IngestReport, ingest_paths
from storage.models import AuditEvent, Decision, Item
from storage.settings import LimitSettings, Settings
from tests.storage.hostile_corpus import Expect, assert_store_consistent, build_hostile_corpus

MAX_BYTES = 256 * 1024
MAX_MEMBERS = 20
MAX_TEXT = 1000


@pytest.fixture
def tight(settings: Settings) -> Settings:
    limits = LimitSettings(
        max_file_bytes=MAX_BYTES, max_archive_members=MAX_MEMBERS, max_text_chars=MAX_TEXT
    )
    return settings.model_copy(update={"limits": limits})


def _by_key(report: IngestReport, root: Path) -> dict[str, FileResult]:
    prefix = str(root) + "/"
    return {r.path.removeprefix(prefix): r for r in report.results}


def _find(results: dict[str, FileResult], expect: Expect) -> FileResult:
    for key, result in results.items():
        if key == expect.key or key.startswith((expect.key + ":", expect.key + "!")):
            return result
    raise AssertionError(f"no report line for {expect.key!r}; got {sorted(results)}")


def _has_controls(value: str) -> bool:
    return any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value)


def test_hostile_corpus(tmp_path: Path, tight: Settings) -> None:
    root = tmp_path / "corpus"
    expects = build_hostile_corpus(
        root, max_file_bytes=MAX_BYTES, max_members=MAX_MEMBERS, max_text_chars=MAX_TEXT
    )
    engine = make_engine(tight.database_url)
    report = ingest_paths(engine, tight, [root], source="hostile")

    results = _by_key(report, root)
    assert len(results) == len(report.results), "two files reported under one name"
    for expect in expects:
        got = _find(results, expect)
        assert got.status == expect.status, (expect, got)
        if expect.reason:
            assert got.reason and expect.reason.lower() in got.reason.lower(), (expect, got)
    for r in report.results:
        assert r.status in ("accepted", "duplicate", "near_duplicate", "rejected")
        if r.status == "rejected":
            assert r.reason and r.item_id is None
        else:
            assert r.sha256 and len(r.sha256) == 64
        assert not _has_controls(r.path)

    # Row counts match the report exactly and nothing partial is left anywhere.
    stored = [r for r in report.results if r.status in ("accepted", "near_duplicate")]
    counts = assert_store_consistent(engine, tight)
    assert counts["items"] == len(stored)
    with Session(engine) as s:
        items = list(s.scalars(select(Item)))
        ingest_events = s.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "ingest")
        )
        imports = s.scalar(select(func.count()).select_from(Decision))
    assert ingest_events == len(stored)
    assert {i.id for i in items} == {r.item_id for r in stored}
    # rows.csv:2 (weapons;drugs), rows.jsonl:1 (scam_fraud), rows.jsonl:10 (safe).
    assert imports == 3

    # Hostile names and text are kept as plain strings, minus control characters.
    by_name = {i.filename: i for i in items}
    assert "<img src=x onerror=alert(1)>.png" in by_name
    assert "[31mred.png" in by_name and "bad?name.png" in by_name
    html_row = next(i for i in items if i.text and "onmouseover" in i.text)
    assert html_row.text == "<b onmouseover=alert(1)>hi</b>[2J"
    multi = next(i for i in items if i.text and i.text.startswith("multi"))
    assert multi.text == "multi\nline <i>text</i>"
    truncated = next(i for i in items if i.text and i.text.startswith("<script>"))
    assert len(truncated.text or "") == MAX_TEXT
    line10 = _find(results, Expect("rows.jsonl:10", "accepted"))
    assert any("truncated" in note for note in line10.notes)
    for item in items:
        assert not _has_controls(item.filename or "") and not _has_controls(item.text or "")

    # Re-ingesting the same corpus adds nothing.
    again = ingest_paths(engine, tight, [root], source="hostile")
    assert again.summary["accepted"] == again.summary["near_duplicate"] == 0
    assert (
        again.summary["duplicate"]
        == report.summary["accepted"]
        + report.summary["near_duplicate"]
        + report.summary["duplicate"]
    )
    assert assert_store_consistent(engine, tight) == counts
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Decision)) == imports
    engine.dispose()
