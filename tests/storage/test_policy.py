"""The policy file: validation names the offending key; the version is a content hash."""

from __future__ import annotations

import json
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


def test_translations_fall_back_to_english_and_stay_out_of_the_version() -> None:
    policy = load_policy(DEFAULT_POLICY)
    drugs = policy.category("drugs")
    assert drugs.title_in("ko") == "마약"
    assert drugs.title_in("zh-CN") == "毒品"  # a regional tag falls back to its language
    assert "非法毒品" in drugs.description_in("zh")
    assert drugs.title_in("fr") == drugs.title == "Drugs"
    assert drugs.description_in(None) == drugs.description
    for c in policy.categories:  # the default policy speaks all three workbench languages
        for lang in ("ko", "zh"):
            assert c.title_in(lang) != c.title and c.description_in(lang) != c.description

    raw = _raw()
    base = parse_policy(raw).version
    raw["categories"][4]["translations"]["ko"]["title"] = "약물"
    changed = parse_policy(raw)
    assert changed.category("drugs").title_in("ko") == "약물"
    assert changed.version == base  # display text: no re-scoring for a corrected word
    for c in raw["categories"]:
        c.pop("translations")
    bare = parse_policy(raw)
    assert bare.version == base and bare.category("drugs").title_in("ko") == "Drugs"
    raw["categories"][4]["description"] += " Also cannabis."
    assert parse_policy(raw).version != base  # what the model is asked still versions


def test_only_a_title_falls_back_for_the_description() -> None:
    raw = _raw()
    raw["categories"][0]["translations"] = {"ja": {"title": "性的コンテンツ"}}
    c = parse_policy(raw).category("sexual")
    assert c.title_in("ja") == "性的コンテンツ" and c.description_in("ja") == c.description


@pytest.mark.parametrize(
    ("translations", "message"),
    [
        ("Korean", "categories[0].translations: expected a mapping"),
        ({"Korean!": {"title": "x"}}, "not a language tag"),
        ({"ko": "성적"}, "translations.ko: expected a mapping"),
        ({"ko": {"name": "성적"}}, "translations.ko: unknown key 'name'"),
        ({"ko": {"title": "  "}}, "translations.ko.title: must be a non-empty string"),
        ({"ko": {}}, "translations.ko: give a title"),
    ],
)
def test_bad_translations_name_the_key(translations, message: str) -> None:
    raw = _raw()
    raw["categories"][0]["translations"] = translations
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(raw)


def test_a_policy_in_a_language_keeps_its_ids_thresholds_and_version() -> None:
    policy = load_policy(DEFAULT_POLICY)
    ko = policy.in_language("ko")
    assert ko.version == policy.version and ko.ids == policy.ids
    assert ko.category("scam_fraud").title == "사기"
    assert ko.category("self_harm").threshold == policy.category("self_harm").threshold
    assert policy.in_language("fr").categories == policy.categories


def test_to_dict_round_trips_through_the_parser() -> None:
    """`warden policy show --json` and the tests edit `to_dict()` and parse it back: the
    translations and reveal roles must come out in the form the parser reads."""
    policy = load_policy(DEFAULT_POLICY)
    assert any(c.translations for c in policy.categories)
    again = parse_policy(json.loads(json.dumps(policy.to_dict())))
    assert again == policy and again.version == policy.version
    cs = next(c for c in again.categories if c.id == "child_safety")
    assert cs.title_in("ko") != cs.title
