"""The moderation policy: categories, thresholds and flags, loaded from YAML and versioned.

The policy version is a content hash of the normalised policy, recorded with every prediction
and decision, so a change to any description or threshold is a new version.

A category may carry `translations` (per language: `title` and a one-line `description`) for
reviewers who work in Korean, Chinese, ...; `title_in(lang)` / `description_in(lang)` fall back
to the English text. Translations are display text only: the model is always asked the English
description, so they stay out of the version (a corrected Korean word must not make every
worker re-score the ledger under a "new" policy).

Run: warden policy show [--path assets/policy/default.yaml]
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
SAFE = "safe"
ROLES = ("moderator", "annotator", "engineer", "admin")
# Who may see a restricted category's image unblurred when the policy names no one.
RESTRICTED_REVEAL_ROLES = ("admin",)
# A language tag for translations: "ko", "zh", "pt-BR".
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


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
    # (language, title, description) for reviewers; "" where the policy gives none.
    translations: tuple[tuple[str, str, str], ...] = ()

    def _translated(self, lang: str | None) -> tuple[str, str] | None:
        if not lang:
            return None
        base = lang.split("-")[0].lower()
        for wanted in (lang.lower(), base):
            for code, title, description in self.translations:
                if code.lower() == wanted:
                    return title, description
        return None

    def title_in(self, lang: str | None) -> str:
        """The title in `lang` ("ko", "zh-CN" falls back to "zh"), else the English one."""
        found = self._translated(lang)
        return found[0] if found and found[0] else self.title

    def description_in(self, lang: str | None) -> str:
        """The one-line definition in `lang`, else the English description."""
        found = self._translated(lang)
        return found[1] if found and found[1] else self.description


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

    def in_language(self, lang: str | None) -> Policy:
        """The same policy (same version) with titles and descriptions in `lang` where it has
        them: for code that shows a policy to a reviewer (charts, tables)."""
        return replace(
            self,
            categories=tuple(
                replace(c, title=c.title_in(lang), description=c.description_in(lang))
                for c in self.categories
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """The policy as `parse_policy` reads it (a round trip gives an equal policy)."""
        return {"name": self.name, "categories": [_category_dict(c) for c in self.categories]}


_FIELDS = {
    "id",
    "title",
    "description",
    "threshold",
    "blur",
    "restricted",
    "reveal_roles",
    "translations",
}


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


def _parse_translations(raw: Any, where: str) -> tuple[tuple[str, str, str], ...]:
    if "translations" not in raw:
        return ()
    value = raw["translations"]
    if not isinstance(value, dict):
        raise PolicyError(f"{where}.translations: expected a mapping of language to text")
    out = []
    for lang, text in value.items():
        at = f"{where}.translations.{lang}"
        if not isinstance(lang, str) or not _LANG.match(lang):
            raise PolicyError(f"{at}: {lang!r} is not a language tag such as 'ko' or 'zh'")
        if not isinstance(text, dict):
            raise PolicyError(f"{at}: expected a mapping with title and description")
        unknown = set(text) - {"title", "description"}
        if unknown:
            raise PolicyError(f"{at}: unknown key {sorted(unknown)[0]!r}")
        for key in ("title", "description"):
            if key in text and (not isinstance(text[key], str) or not text[key].strip()):
                raise PolicyError(f"{at}.{key}: must be a non-empty string")
        if not text:
            raise PolicyError(f"{at}: give a title, a description or both")
        title = text.get("title", "").strip()
        out.append((lang, title, " ".join(text.get("description", "").split())))
    return tuple(out)


def _category_dict(c: PolicyCategory) -> dict[str, Any]:
    body = asdict(c)
    body["reveal_roles"] = list(c.reveal_roles)
    body["translations"] = {
        lang: {key: text for key, text in (("title", title), ("description", description)) if text}
        for lang, title, description in c.translations
    }
    if not body["translations"]:
        del body["translations"]
    return body


def _hashed(c: PolicyCategory) -> dict[str, Any]:
    """A category as it enters the version hash: reveal_roles only where it differs from its
    default, so policies written before the field existed keep their version; translations
    never (display text: the model is asked the English description)."""
    body = asdict(c)
    del body["translations"]
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
        translations=_parse_translations(raw, where),
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
