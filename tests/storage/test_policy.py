"""The policy file: validation names the offending key; the version is a content hash."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from storage.policy import PolicyError, load_policy, parse_policy
from storage.settings import DEFAULT_POLICY

DEFAULT_IDS = [
    "sexual",
    "child_safety",
    "violence_gore",
    "weapons",
    "drugs",
    "hate_extremism",
    "self_harm",
    "scam_fraud",
    "illegal_ads",
    "harassment",
    "privacy_pii",
]


def _raw() -> dict:
    return yaml.safe_load(DEFAULT_POLICY.read_text())


def test_default_policy_has_the_design_categories() -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert policy.ids == DEFAULT_IDS
    assert policy.restricted_ids == {"child_safety"}
    assert all(0 < c.threshold < 1 for c in policy.categories)
    assert policy.category("sexual").blur


def test_version_changes_with_content_only() -> None:
    a = parse_policy(_raw())
    b = parse_policy(_raw())
    assert a.version == b.version
    raw = _raw()
    raw["categories"][3]["threshold"] = 0.61
    assert parse_policy(raw).version != a.version


def test_flagged_uses_each_threshold() -> None:
    policy = parse_policy(_raw())
    scores = {c: 0.0 for c in policy.ids} | {"self_harm": 0.41, "weapons": 0.49}
    assert policy.flagged(scores) == ["self_harm"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["categories"][0].pop("description"), "categories[0].description"),
        (lambda r: r["categories"][1].update(threshold=1.5), "categories[1].threshold"),
        (lambda r: r["categories"][2].update(blur="yes"), "categories[2].blur"),
        (lambda r: r["categories"][3].update(id="Bad-Id"), "categories[3].id"),
        (lambda r: r["categories"][4].update(colour="red"), "'colour'"),
        (lambda r: r["categories"][5].update(id="sexual"), "duplicate id"),
        (lambda r: r.update(categories=[]), "categories: required"),
    ],
)
def test_errors_name_the_offending_key(mutate, message: str) -> None:
    raw = _raw()
    mutate(raw)
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(raw)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories: [\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)


def test_validate_labels() -> None:
    policy = parse_policy(_raw())
    assert policy.validate_labels(["Drugs", "safe", "scam_fraud", "drugs"]) == [
        "drugs",
        "scam_fraud",
    ]
    assert policy.validate_labels(["safe"]) == []
    with pytest.raises(PolicyError, match="unknown category 'nudity'"):
        policy.validate_labels(["nudity"])
