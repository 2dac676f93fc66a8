"""The Review card's own markup (score panel, blur caption) keeps policy and item text inert:
category titles and definitions come from a policy file a team edits, so they are escaped.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from app.tabs.review import image_html, scores_html
from storage.policy import Policy, PolicyCategory
from storage.review import ReviewCard

HOSTILE = '<img src=x onerror="window.__pwned=1">'


def _card(**kw) -> ReviewCard:
    base = ReviewCard(
        item_id=1,
        status="in_review",
        filename=None,
        source=None,
        text=None,
        priority=0,
        lease_expires_at=None,
        scored=True,
        scores={"a": 0.9, "b": 0.2, "c": 0.05},
        flagged=["a"],
    )
    return replace(base, **kw)


def _ctx() -> SimpleNamespace:
    cats = (
        PolicyCategory(id="a", title=f"A {HOSTILE}", description=f"defines a {HOSTILE}"),
        PolicyCategory(id="b", title="B", description='quote " and <b>bold</b>', threshold=0.3),
        PolicyCategory(id="c", title="C", description="c"),
    )
    return SimpleNamespace(policy=Policy(name="t", categories=cats, version="1"))


def test_score_panel_escapes_policy_text_and_sorts_by_score() -> None:
    out = scores_html(_card(), _ctx())
    assert "<img" not in out and "<b>bold" not in out
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in out
    assert out.index("wd-over") < out.index("wd-near") < out.index("wd-low")
    assert "Model flags: A &lt;img" in out


def test_a_safe_card_has_no_headline_category() -> None:
    out = scores_html(_card(scores={"a": 0.1, "b": 0.01}, flagged=[]), _ctx())
    assert "Model: nothing over its threshold" in out and "Model flags" not in out


def test_blur_caption_is_escaped_and_only_on_a_blurred_image() -> None:
    blurred = image_html("/img/1?v=blur", True, f"a 0.90 {HOSTILE}")
    assert "Blurred: a 0.90 &lt;img" in blurred and "<img src=x" not in blurred
    assert "Blurred" not in image_html("/img/1?v=view", False, "a 0.90")


def test_dashboard_accept_rate_chart_shows_each_reviewers_share() -> None:
    import pandas as pd

    from app.tabs.dashboard import _accept_rate

    empty = _accept_rate(pd.DataFrame(columns=["reviewer", "decisions", "accepted", "accept_rate"]))
    assert not empty.data and empty.layout.annotations[0].text.startswith("No ")
    frame = pd.DataFrame(
        {
            "reviewer": ["al", "bo"],
            "decisions": [4, 2],
            "accepted": [1, 2],
            "accept_rate": [0.25, 1.0],
        }
    )
    [bar] = _accept_rate(frame).data
    assert list(bar.x) == ["al", "bo"] and list(bar.y) == [0.25, 1.0]
    assert list(bar.text) == ["1 of 4", "2 of 2"]
