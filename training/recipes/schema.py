"""Validation of recipe sections with pydantic: types, unknown keys and ranges.

Each section's fields, types and defaults come from its dataclass (`StageConfig`,
`PostTrainConfig`, `DemoPlan`, `DemoArch`); this module adds the ranges and checks a YAML
mapping against them, so `lr: 2e-4` (a string to PyYAML) arrives as the float 0.0002 and
`lr: fast`, `lr: -1` or a misspelt key fail with the file and the key:

    /path/recipe.yaml: post.lr: Input should be greater than 0 (got -1)

Run: python -c "from training.recipes import load_recipe; print(load_recipe('demo'))"
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from storage.errors import WardenError

# Allowed ranges by field name (the same name means the same thing in every section).
_RANGES: dict[str, dict[str, float]] = {
    "lr": {"gt": 0, "lt": 1},
    "weight_decay": {"ge": 0, "lt": 1},
    "batch_size": {"ge": 1},
    "grad_accum": {"ge": 1},
    "epochs": {"gt": 0},
    "dpo_epochs": {"gt": 0},
    "max_steps": {"ge": 1},
    "max_seconds": {"gt": 0},
    "warmup_steps": {"ge": 0},
    "ocr_noise": {"ge": 0, "le": 1},
    "word_dropout": {"ge": 0, "lt": 1},
    "bpe_dropout": {"ge": 0, "lt": 1},
    "split_words": {"ge": 0, "le": 1},
    "yes_weight": {"gt": 0},
    "questions_per_image": {"ge": 1},
    "log_every": {"ge": 1},
    "lora_r": {"ge": 1},
    "lora_alpha": {"ge": 1},
    "lora_dropout": {"ge": 0, "lt": 1},
    "dpo_beta": {"gt": 0},
    "save_steps": {"ge": 1},
    "logging_steps": {"ge": 1},
    "replay_ratio": {"ge": 0, "lt": 1},
    "negatives_per_image": {"ge": 0},
    "threshold_benign_rate": {"ge": 0, "le": 1},
    "grounding_weight": {"ge": 0},
    "hold_weight": {"ge": 0},
    "n_train": {"ge": 1},
    "n_eval": {"ge": 0},
    "image_size": {"ge": 28},
    "heldout_family_share": {"ge": 0, "lt": 1},
    "vision_hidden": {"ge": 1},
    "vision_layers": {"ge": 1},
    "vision_heads": {"ge": 1},
    "patch_size": {"ge": 1},
    "text_hidden": {"ge": 1},
    "text_layers": {"ge": 1},
    "text_heads": {"ge": 1},
    "text_kv_heads": {"ge": 1},
    "text_intermediate": {"ge": 1},
    "vocab_size": {"ge": 256},
}
# Where a section's meaning of a name differs: post-training's max_steps -1 means "by epochs".
_SECTION_RANGES: dict[str, dict[str, dict[str, float]]] = {
    "PostTrainConfig": {"max_steps": {"ge": -1}},
}


@functools.cache
def section_model(cls: type, skip: frozenset[str] = frozenset()) -> type[BaseModel]:
    """A pydantic model of `cls`'s fields (less `skip`: sections validated on their own)."""
    hints = get_type_hints(cls)
    ranges = _RANGES | _SECTION_RANGES.get(cls.__name__, {})
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        hint = hints[f.name]
        if f.name in ranges:
            hint = Annotated[hint, Field(**ranges[f.name])]
        default: Any = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        fields[f.name] = (hint, default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(f"{cls.__name__}Recipe", __config__=config, **fields)


def validate_section(
    cls: type,
    raw: Any,
    path: Path,
    where: str,
    *,
    skip: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The keys `raw` sets, as validated values for `cls(**values)`; errors name file and key."""
    if not isinstance(raw, dict):
        raise WardenError(f"{path}: {where}: expected a mapping of settings, got {raw!r}")
    model = section_model(cls, skip)
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        raise WardenError(_message(exc, model, path, where)) from None
    return {k: getattr(parsed, k) for k in parsed.model_fields_set}


def _message(exc: ValidationError, model: type[BaseModel], path: Path, where: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        key = f"{where}.{loc}" if loc else where
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(model.model_fields))
            lines.append(f"{path}: {key}: unknown key {loc!r}; known: {known}")
        else:
            lines.append(f"{path}: {key}: {err['msg']} (got {err['input']!r})")
    return "\n".join(lines)
