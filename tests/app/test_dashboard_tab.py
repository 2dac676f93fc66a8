"""The Dashboard tab as its users meet it: charts with data as soon as the tab opens, date axes
that fit the data (not a month of zeros around one day), the policy's category titles, backlog
ages in a unit that fits, one template for every chart, and empty charts that say so in words.

The figure tests run on SQLite and PostgreSQL; the `browser` ones drive the real app in
Chromium and save screenshots of the tab for an engineer and an admin.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, update

from app import charts
from app.context import AppContext
from app.tabs.dashboard import figures
from storage.db import unit_of_work
from storage.decisions import record_decision
from storage.domain import Verdict
from storage.models import Blob, Decision, Item
from storage.policy import Policy
from storage.queue import record_prediction
from storage.settings import Settings
from storage.users import create_user
from tests.app.conftest import LiveApp
from tests.app.test_browser import login

_n = itertools.count()
DAY = timedelta(days=1)


def _item(s, policy: Policy, scores: dict[str, float] | None, *, created: datetime) -> int:
    sha = hashlib.sha256(f"dash-{next(_n)}".encode()).hexdigest()
    s.add(Blob(sha256=sha, size_bytes=1, mime="image/png", width=1, height=1))
    item = Item(blob_sha256=sha, view_sha256=sha, source="dash", status="queued", priority=0)
    s.add(item)
    s.flush()
    item.created_at = created
    if scores is not None:
        full = {c: 0.02 for c in policy.ids} | scores
        record_prediction(
            s,
            item.id,
            Verdict(
                scores=full,
                flagged=policy.flagged(full),
                model_version="m1",
                policy_version=policy.version,
                latency_ms=1.0,
            ),
        )
    return item.id


@pytest.fixture
def ctx(settings: Settings, engine: Engine) -> AppContext:
    return AppContext.create(settings, engine)


def _seed(ctx: AppContext, now: datetime) -> None:
    """Six items in and decided today by one moderator, and one item queued three days ago."""
    with unit_of_work(ctx.engine) as s:
        create_user(s, "mia", "mia-password-1", "moderator")
        for k in range(6):
            item = _item(s, ctx.policy, {"scam_fraud": 0.9 if k < 4 else 0.1}, created=now)
            labels = ["scam_fraud"] if k % 2 == 0 else []
            record_decision(
                s,
                item_id=item,
                categories=labels,
                source="moderator",
                reviewer="mia",
                policy=ctx.policy,
            )
        _item(s, ctx.policy, None, created=now - 3 * DAY)
        s.execute(update(Decision).values(created_at=now))


def _axis_range(fig) -> tuple[pd.Timestamp, pd.Timestamp]:
    lo, hi = fig.layout.xaxis.range
    return pd.Timestamp(lo), pd.Timestamp(hi)


def test_time_axes_fit_the_days_with_data(ctx: AppContext) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    _seed(ctx, now)
    f = figures(ctx, None)
    first, last = pd.Timestamp((now - 3 * DAY).date()), pd.Timestamp(now.date())
    for name in ("volume", "through"):
        fig = f[name]
        days = {pd.Timestamp(x) for trace in fig.data for x in trace.x}
        # The data's days only: not 31 days, 27 of them zeros, before the first item.
        assert min(days) >= first and max(days) <= last, (name, sorted(days))
        lo, hi = _axis_range(fig)
        assert first - DAY < lo <= min(days) and max(days) <= hi < last + DAY, (name, lo, hi)
        for trace in fig.data:  # a day's bar is most of a day wide, not one millisecond
            if trace.type == "bar":
                assert trace.width >= DAY.total_seconds() * 1000 / 2, (name, trace.width)
    assert {pd.Timestamp(x) for x in f["through"].data[0].x} == {last}
    assert f["through"].data[0].name == "mia" and f["through"].layout.showlegend
    assert sum(f["volume"].data[0].y) == 7 and sum(f["volume"].data[1].y) == 6


def test_charts_name_categories_by_their_policy_titles(ctx: AppContext) -> None:
    _seed(ctx, datetime.now(UTC).replace(tzinfo=None))
    f = figures(ctx, None)
    title = ctx.policy.category("scam_fraud").title
    assert title == "Scams and fraud"
    by_cat = dict(zip(f["by_cat"].data[0].y, f["by_cat"].data[0].x, strict=True))
    assert by_cat[title] == 3 and by_cat[charts.SAFE_TITLE] == 3
    assert not any("_" in label for label in by_cat), list(by_cat)
    pr_labels = set(f["pr"].data[0].y)
    assert title in pr_labels and "scam_fraud" not in pr_labels
    assert title in set(f["conf"].data[0].y)
    table = f["table"]
    assert list(table.columns[:2]) == ["title", "id"]
    assert table.set_index("id").loc["scam_fraud", "title"] == title


def test_backlog_ages_are_in_a_unit_that_fits(ctx: AppContext) -> None:
    _seed(ctx, datetime.now(UTC).replace(tzinfo=None))
    fig = figures(ctx, None)["backlog"]
    assert fig.layout.yaxis2.title.text == "age (days)"
    bars, oldest = fig.data[0], fig.data[1]
    queued = list(bars.x).index("Queued")
    assert bars.y[queued] == 1
    assert 2.9 <= oldest.y[queued] <= 3.1  # three days, not 72 "hours"


def test_the_headline_says_what_waits_and_what_was_decided(ctx: AppContext) -> None:
    assert figures(ctx, None)["summary"].startswith("No open items. Today 0 in, 0 decided")
    _seed(ctx, datetime.now(UTC).replace(tzinfo=None))
    line = figures(ctx, "m1")["summary"]
    assert line.startswith("1 open item, the oldest waiting 3.0 days. Today 6 in, 6 decided")
    assert "last 7 days 6 decided" in line and line.endswith("Scores compared: model m1.")


def test_every_chart_uses_the_template_and_empty_ones_say_so(ctx: AppContext) -> None:
    f = figures(ctx, None)  # an empty database
    plots = {k: v for k, v in f.items() if k not in ("table", "summary")}
    assert len(plots) == 8
    for name, fig in plots.items():
        assert fig.layout.template.layout.colorway == tuple(charts.COLOURS), name
        assert not fig.data, name
        words = [a.text for a in fig.layout.annotations]
        assert words and words[0].startswith(("No ", "Nothing")), (name, words)
    _seed(ctx, datetime.now(UTC).replace(tzinfo=None))
    for name, fig in figures(ctx, None).items():
        if name not in ("table", "summary"):
            assert fig.layout.template.layout.colorway == tuple(charts.COLOURS), name
            assert any(len(t.x if t.x is not None else t.z) for t in fig.data), name


# --- in the browser ---------------------------------------------------------------------------

PLOTS = [
    "db-volume",
    "db-backlog",
    "db-by-category",
    "db-precision-recall",
    "db-confusion",
    "db-calibration",
    "db-throughput",
    "db-exposure",
]

POINTS_JS = """(ids) => ids.map(id => {
  const p = document.querySelector('#' + id + ' .js-plotly-plot');
  if (!p || !p._fullData) return [id, -1];
  // _fullData: the traces as drawn (numeric arrays arrive base64-packed in `data`).
  return [id, p._fullData.reduce((n, t) => n + ((t.x || t.z || []).length || 0), 0)];
})"""


def _seed_live(app: LiveApp, reviewer: str) -> None:
    verdicts = [app.verdict({"scam_fraud": 0.9 if k < 3 else 0.05}) for k in range(5)]
    ids = app.seed_items(5, source="dash", verdicts=verdicts)
    with unit_of_work(app.engine) as s:
        for k, item in enumerate(ids[:4]):
            record_decision(
                s,
                item_id=item,
                categories=["scam_fraud"] if k < 2 else [],
                source="moderator",
                reviewer=reviewer,
                policy=app.policy,
            )


@pytest.fixture
def sized_page(chromium, request) -> Iterator[object]:
    width, height = request.param
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


# Each role at one of the two screen sizes the workbench is made for (issue 17).
@pytest.mark.browser
@pytest.mark.parametrize(
    ("role", "sized_page"),
    [("engineer", (1366, 768)), ("admin", (1920, 1080))],
    ids=["engineer-1366x768", "admin-1920x1080"],
    indirect=["sized_page"],
)
def test_dashboard_has_data_as_soon_as_the_tab_opens(
    sized_page, live_app: LiveApp, screenshots: Path, role: str
) -> None:
    wpage = sized_page
    user = f"dash_{role}"
    live_app.add_user(user, role)
    _seed_live(live_app, user)
    login(wpage, live_app, user)
    wpage.click("#tab-dashboard-button")  # no Refresh press
    try:
        wpage.wait_for_function(
            f"(ids) => ({POINTS_JS})(ids).every(([, n]) => n > 0)", arg=PLOTS, timeout=60_000
        )
    except Exception:  # the assertion below names the plots that stayed empty
        wpage.screenshot(path=str(screenshots / f"dashboard_{role}_failed.png"), full_page=True)
    points = dict(wpage.evaluate(POINTS_JS, PLOTS))
    assert all(n > 0 for n in points.values()), points
    summary = wpage.eval_on_selector("#db-summary textarea, #db-summary input", "e => e.value")
    assert "decided" in summary and "Scores compared: model test-model@1." in summary, summary
    text = wpage.locator("#db-by-category").inner_text()
    assert "Scams and fraud" in text and "scam_fraud" not in text
    wpage.wait_for_timeout(500)
    wpage.screenshot(path=str(screenshots / f"dashboard_{role}.png"), full_page=True)
