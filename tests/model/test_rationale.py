"""Strict JSON rationale parsing: exact schema, known ids, nothing guessed."""

from __future__ import annotations

import pytest

from model.rationale import format_rationale_reply, parse_rationale, rationale_json_schema


@pytest.mark.parametrize(
    "raw, cats",
    [
        ('{"categories": [], "rationale": "a menu"}', []),
        (
            '  {"categories": ["scam_fraud", "illegal_ads"], "rationale": "fake giveaway"}\n',
            ["scam_fraud", "illegal_ads"],
        ),
        ('```json\n{"categories": ["drugs"], "rationale": "sells pills"}\n```', ["drugs"]),
    ],
)
def test_valid_replies_parse(raw, cats, policy):
    reply = parse_rationale(raw, policy)
    assert reply is not None and reply.categories == cats


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "Yes",
        '{"categories": ["scam_fraud"]}',  # missing rationale
        '{"categories": ["scam_fraud"], "rationale": "x", "score": 0.9}',  # extra key
        '{"categories": ["spam"], "rationale": "x"}',  # unknown id
        '{"categories": ["safe"], "rationale": "x"}',  # 'safe' is not a category id
        '{"categories": ["drugs", "drugs"], "rationale": "x"}',  # duplicate
        '{"categories": "drugs", "rationale": "x"}',  # not a list
        '{"categories": [1], "rationale": "x"}',  # not strings
        '{"categories": [], "rationale": 5}',  # strict: no coercion
        'The answer is {"categories": [], "rationale": "x"}',  # prose around JSON
        '{"categories": [], "rationale": "x"} {"categories": []}',  # two objects
        '[{"categories": [], "rationale": "x"}]',
        '{"categories": [], "rationale": "' + "x" * 1001 + '"}',
    ],
)
def test_anything_else_is_unparsable(raw, policy):
    assert parse_rationale(raw, policy) is None


def test_canonical_reply_round_trips_and_schema_lists_ids(policy):
    text = format_rationale_reply(["weapons"], "rifle for sale")
    assert parse_rationale(text, policy).rationale == "rifle for sale"
    schema = rationale_json_schema(policy)
    assert schema["properties"]["categories"]["items"]["enum"] == policy.ids
    assert schema["additionalProperties"] is False
