"""Strict parsing of the model's JSON rationale: {"categories": [ids], "rationale": "text"}.

A reply is accepted only if it is exactly one JSON object with those two keys (and, from a
model asked to ground, an optional "boxes" list: model.grounding; no others),
`categories` a list of distinct ids of the policy, `rationale` a short string. Surrounding
whitespace and one enclosing markdown code fence are tolerated; nothing else is repaired or
guessed. A reply that does not parse is stored raw and counted as unparsable by the caller.

Run: python -c "from model.rationale import *; from storage.policy import load_policy as L;
    from storage.settings import DEFAULT_POLICY as D;
    print(parse_rationale('{\\"categories\\": [], \\"rationale\\": \\"ok\\"}', L(D)))"
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from storage.policy import Policy

MAX_RATIONALE_CHARS = 1000
_FENCE = re.compile(r"^```(?:json)?\s*\n(?P<body>.*)\n```$", re.DOTALL)


class RationaleReply(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    categories: list[str]
    rationale: str = Field(max_length=MAX_RATIONALE_CHARS)
    # Grounding models are also asked for boxes (model.grounding parses each entry, dropping
    # malformed ones); anything but a list here makes the reply unparsable.
    boxes: list[Any] | None = None


def rationale_json_schema(policy: Policy) -> dict[str, Any]:
    """JSON schema of a valid reply for `policy` (for guided decoding on servers that have it)."""
    return {
        "type": "object",
        "properties": {
            "categories": {
                "type": "array",
                "items": {"type": "string", "enum": policy.ids},
                "uniqueItems": True,
            },
            "rationale": {"type": "string", "maxLength": MAX_RATIONALE_CHARS},
        },
        "required": ["categories", "rationale"],
        "additionalProperties": False,
    }


def format_rationale_reply(categories: list[str], rationale: str) -> str:
    """The canonical reply text, e.g. the completion a training example teaches."""
    return json.dumps({"categories": categories, "rationale": rationale}, ensure_ascii=False)


def parse_rationale(raw: str, policy: Policy) -> RationaleReply | None:
    """The parsed reply, or None if it is not exactly a valid reply for `policy`."""
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group("body").strip()
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        reply = RationaleReply.model_validate(data)
    except ValidationError:
        return None
    known = set(policy.ids)
    if any(c not in known for c in reply.categories):
        return None
    if len(set(reply.categories)) != len(reply.categories):
        return None
    return reply
