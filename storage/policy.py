"""The moderation policy: categories, thresholds and flags, loaded from YAML and versioned.

The policy version is a content hash of the normalised policy, recorded with every prediction
and decision, so a change to any description or threshold is a new version.

Run: warden policy show [--path assets/policy/default.yaml]
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
SAFE = "safe"
ROLES = ("moderator", "annotator", "engineer", "admin")
# Who may see a restricted category's image unblurred when the policy names no one.
RESTRICTED_REVEAL_ROLES = ("admin",)


class PolicyError(ValueError):
    """A policy file is missing, malformed, or names an invalid key; the message says which."""


@dataclass(frozen=True)
class PolicyCategory:
    id: str
    title: str
    description: str
    threshold: float = 0.5
    blur: bool = False
    restricted: bool = False
    # Roles that may reveal (see unblurred) an item flagged or labelled with this category.
    reveal_roles: tuple[str, ...] = ROLES


@dataclass(frozen=True)
class Policy:
    name: str
    categories: tuple[PolicyCategory, ...]
    version: str

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.categories]

    @property
    def restricted_ids(self) -> set[str]:
        return {c.id for c in self.categories if c.restricted}

    def reveal_roles_for(self, category_ids: Iterable[str]) -> frozenset[str]:
        """Roles allowed to reveal an item with all of these categories (unknown ids: none)."""
        allowed = set(ROLES)
        known = {c.id: c for c in self.categories}
        for cid in category_ids:
            allowed &= set(known[cid].reveal_roles) if cid in known else set()
        return frozenset(allowed)

    def category(self, category_id: str) -> PolicyCategory:
        for c in self.categories:
            if c.id == category_id:
                return c
        raise KeyError(category_id)

    def flagged(self, scores: Mapping[str, float]) -> list[str]:
        """Categories whose score is at or over their threshold, in policy order."""
        return [c.id for c in self.categories if scores.get(c.id, 0.0) >= c.threshold]

    def validate_labels(self, labels: list[str]) -> list[str]:
        """Normalise a label list; 'safe' (or nothing) means no category. Unknown ids raise."""
        known = set(self.ids)
        out: list[str] = []
        for raw in labels:
            label = raw.strip().lower()
            if not label or label == SAFE:
                continue
            if label not in known:
                raise PolicyError(f"unknown category {raw!r}; known: {', '.join(self.ids)}")
            if label not in out:
                out.append(label)
        return [c for c in self.ids if c in out]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "categories": [asdict(c) for c in self.categories]}


_FIELDS = {"id", "title", "description", "threshold", "blur", "restricted", "reveal_roles"}


def _default_reveal_roles(restricted: bool) -> tuple[str, ...]:
    return RESTRICTED_REVEAL_ROLES if restricted else ROLES


def _parse_reveal_roles(raw: Any, where: str, restricted: bool) -> tuple[str, ...]:
    if "reveal_roles" not in raw:
        return _default_reveal_roles(restricted)
    value = raw["reveal_roles"]
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(r, str) for r in value)
    ):
        raise PolicyError(f"{where}.reveal_roles: must be a non-empty list of roles")
    roles = [r.strip().lower() for r in value]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise PolicyError(
            f"{where}.reveal_roles: unknown role {unknown[0]!r}; known: {', '.join(ROLES)}"
        )
    return tuple(r for r in ROLES if r in roles)


def _hashed(c: PolicyCategory) -> dict[str, Any]:
    """A category as it enters the version hash: reveal_roles only where it differs from its
    default, so policies written before the field existed keep their version."""
    body = asdict(c)
    if c.reveal_roles == _default_reveal_roles(c.restricted):
        del body["reveal_roles"]
    else:
        body["reveal_roles"] = list(c.reveal_roles)
    return body


def _parse_category(raw: Any, index: int) -> PolicyCategory:
    where = f"categories[{index}]"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    for key in ("id", "title", "description"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise PolicyError(f"{where}.{key}: required non-empty string")
    cid = raw["id"]
    if not _ID.match(cid) or cid == SAFE:
        raise PolicyError(f"{where}.id: {cid!r} must be snake_case and not 'safe'")
    threshold = raw.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise PolicyError(f"{where}.threshold: must be a number in (0, 1)")
    if not 0.0 < float(threshold) < 1.0:
        raise PolicyError(f"{where}.threshold: {threshold} is outside (0, 1)")
    for key in ("blur", "restricted"):
        if key in raw and not isinstance(raw[key], bool):
            raise PolicyError(f"{where}.{key}: must be true or false")
    restricted = bool(raw.get("restricted", False))
    return PolicyCategory(
        id=cid,
        title=raw["title"].strip(),
        description=" ".join(raw["description"].split()),
        threshold=float(threshold),
        blur=bool(raw.get("blur", False)),
        restricted=restricted,
        reveal_roles=_parse_reveal_roles(raw, where, restricted),
    )


def parse_policy(data: Any) -> Policy:
    if not isinstance(data, dict):
        raise PolicyError("policy: expected a mapping at the top level")
    unknown = set(data) - {"name", "categories"}
    if unknown:
        raise PolicyError(f"policy: unknown key {sorted(unknown)[0]!r}")
    cats = data.get("categories")
    if not isinstance(cats, list) or not cats:
        raise PolicyError("categories: required non-empty list")
    parsed = tuple(_parse_category(c, i) for i, c in enumerate(cats))
    seen: set[str] = set()
    for i, c in enumerate(parsed):
        if c.id in seen:
            raise PolicyError(f"categories[{i}].id: duplicate id {c.id!r}")
        seen.add(c.id)
    name = data.get("name", "policy")
    if not isinstance(name, str):
        raise PolicyError("name: must be a string")
    body = {"name": name, "categories": [_hashed(c) for c in parsed]}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return Policy(name=name, categories=parsed, version=f"{name}@{digest[:12]}")


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return parse_policy(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from exc
