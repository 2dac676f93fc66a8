"""Training recipes: small validated dataclasses loaded from the YAML files in this folder.

A recipe names a base model and the settings of each stage: `pre` and `mid`
(`training.pretrain.StageConfig`), `post` (`training.posttrain.PostTrainConfig`) and, for the
demo checkpoint, `demo` (`training.pretrain.DemoPlan` fields). Each section is validated by
`training.recipes.schema` (types, ranges, unknown keys), so a typo never silently falls back
to a default and `lr: 2e-4` is a number; errors name the file and the key.
`extends: <recipe>` starts from another recipe and overrides only what it names (mappings
merge key by key; any other value replaces).

    recipe = load_recipe("demo")             # training/recipes/demo.yaml
    recipe = load_recipe("my/recipe.yaml")   # any file
Run: warden train post --recipe internvl3_5-2b --base OpenGVLab/InternVL3_5-2B-HF ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from storage.errors import WardenError
from training.recipes.schema import validate_section

RECIPES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Recipe:
    name: str
    base: str | None = None
    description: str = ""
    pre: Any = None  # StageConfig
    mid: Any = None  # StageConfig
    post: Any = None  # PostTrainConfig
    demo: Any = None  # DemoPlan
    notes: dict[str, Any] = field(default_factory=dict)


def _build(
    cls: type, raw: Any, path: Path, where: str, *, skip: frozenset[str] = frozenset(), **extra: Any
) -> Any:
    if raw is None:
        return None
    values = validate_section(cls, raw, path, where, skip=skip)
    return cls(**values, **extra)


def recipe_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = RECIPES_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise WardenError(f"no recipe {name_or_path!r}; built-in recipes: {known}")


_KNOWN_KEYS = {"name", "base", "description", "pre", "mid", "post", "demo", "notes", "extends"}


def _merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    out = dict(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_raw(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The recipe's mapping with its `extends` chain merged in (child keys win)."""
    if path.resolve() in chain:
        names = " -> ".join(p.stem for p in (*chain, path.resolve()))
        raise WardenError(f"{path}: recipes extend each other in a cycle ({names})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise WardenError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise WardenError(f"{path}: a recipe is a mapping of sections")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise WardenError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    beside = path.parent / str(parent)
    base = _read_raw(recipe_path(beside if beside.is_file() else parent), (*chain, path.resolve()))
    return _merge(base, raw)


def load_recipe(name_or_path: str | Path) -> Recipe:
    from training.posttrain import PostTrainConfig
    from training.pretrain import DemoArch, DemoPlan, StageConfig

    path = recipe_path(name_or_path)
    raw = _read_raw(path, ())
    for k in ("pre", "mid"):
        if isinstance(raw.get(k), dict) and "stage" in raw[k]:
            raise WardenError(f"{path}: {k}.stage: 'stage' is implied by the section name")
    no_stage = frozenset({"stage"})
    stages = {
        k: _build(StageConfig, raw.get(k), path, k, skip=no_stage, stage=k) for k in ("pre", "mid")
    }
    demo = None
    if raw.get("demo") is not None:
        d = raw["demo"]
        if not isinstance(d, dict):
            raise WardenError(f"{path}: demo: expected a mapping of settings, got {d!r}")
        d = dict(d)
        arch = _build(DemoArch, d.pop("arch", None), path, "demo.arch") or DemoArch()
        nested = {"arch": arch}
        nested |= {k: v for k, v in stages.items() if v is not None}
        skip = frozenset({"arch", "pre", "mid", "benign"})
        demo = _build(DemoPlan, d, path, "demo", skip=skip, **nested)
    return Recipe(
        name=str(raw.get("name") or path.stem),
        base=raw.get("base"),
        description=str(raw.get("description") or ""),
        pre=stages["pre"],
        mid=stages["mid"],
        post=_build(PostTrainConfig, raw.get("post"), path, "post"),
        demo=demo,
        notes=dict(raw.get("notes") or {}),
    )
