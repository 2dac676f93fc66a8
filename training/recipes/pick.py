"""Which recipe trains a given model: never generic settings by accident.

A model's recipe is, in this order:
  1. the one its registry entry records (`manifest["recipe"]`: `warden models register
     --recipe`, and every candidate `warden retrain` registers);
  2. the one its own folder says built it: `demo_card.json` (written by `warden train demo`)
     names its recipe, or it is the `demo` recipe's checkpoint;
  3. the built-in recipe whose `base` is the model (e.g. `internvl3_5-2b` for
     OpenGVLab/InternVL3_5-2B-HF).
Nothing found is a `WardenError` that says how to choose one (`--recipe NAME`; `generic` is
the plain LoRA defaults, chosen knowingly).

Run: python -c "from training.recipes.pick import recipe_for_base; print(recipe_for_base('demo'))"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storage.errors import WardenError
from training.recipes import RECIPES_DIR, load_recipe, recipe_path

RECIPE_KEY = "recipe"  # the registry manifest's key
DEMO_CARD = "demo_card.json"
# The recipe that built the demo checkpoint in assets/model/demo: `warden train demo`'s
# default, so that its bare command rebuilds what ships (the card records it as well).
SHIPPED_DEMO_RECIPE = "demo-distill"


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_for_base(base: str) -> str | None:
    """The recipe a model folder or hub id was built with, or None (see the module docstring)."""
    from model.loading import resolve_model_path

    try:
        resolved = resolve_model_path(base)
    except WardenError:
        resolved = base
    folder = Path(resolved)
    card = folder / DEMO_CARD
    if folder.is_dir() and card.is_file():
        try:
            recorded = json.loads(card.read_text(encoding="utf-8")).get(RECIPE_KEY)
        except (OSError, ValueError, AttributeError):
            recorded = None
        return str(recorded or "demo")
    for name in builtin_recipes():
        try:
            named = load_recipe(name).base
        except WardenError:  # a broken recipe file names no base; `--recipe` reports it
            continue
        if named in (base, resolved):
            return name
    return None


def recipe_for_entry(entry: Any) -> str | None:
    """The recipe of a registry entry (`training.registry.ModelVersionInfo`), or None."""
    recorded = (entry.manifest or {}).get(RECIPE_KEY)
    if recorded:
        return str(recorded)
    for base in (entry.base_model, entry.uri):
        if base:
            found = recipe_for_base(str(base))
            if found:
                return found
    return None


def check_recipe(name_or_path: str) -> str:
    """The recipe as the registry should record it: a built-in name, or a YAML file's absolute
    path; WardenError when there is no such recipe or it does not validate."""
    path = recipe_path(name_or_path)
    load_recipe(path)
    return path.stem if path.parent == RECIPES_DIR else str(path.resolve())


def no_recipe_error(what: str) -> WardenError:
    return WardenError(
        f"no recipe is known for {what}; pass --recipe NAME or a YAML file "
        f"(built-in: {', '.join(builtin_recipes())}; 'generic' is the plain LoRA defaults), "
        "or record it once with `warden models register NAME --uri DIR --recipe NAME`"
    )
