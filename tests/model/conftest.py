"""Tiny real-architecture VLMs built once per test session (random weights, offline)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.backends import ScoringInput
from storage.policy import Policy, load_policy
from storage.settings import DEFAULT_POLICY

ALL_ARCHS = ("internvl", "qwen2vl", "llava", "idefics3")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_root: Path) -> Iterator[callable]:
    """`tiny_model_dir(arch, seed=0)` -> directory, built on first use and reused."""
    from model.tiny import make_tiny

    built: dict[tuple[str, int], Path] = {}

    def get(arch: str = "internvl", seed: int = 0) -> Path:
        key = (arch, seed)
        if key not in built:
            built[key] = make_tiny(tiny_root / f"{arch}-s{seed}", arch, seed=seed)  # type: ignore[arg-type]
        return built[key]

    yield get


@pytest.fixture(scope="session")
def tiny_internvl(tiny_model_dir) -> Path:
    return tiny_model_dir("internvl")


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY)


def noise_image(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture
def items() -> list[ScoringInput]:
    """Three items of different sizes and caption / OCR lengths (so the batch is padded)."""
    return [
        ScoringInput(image=noise_image(0), text="look at this", ocr_text="WIN A FREE PHONE"),
        ScoringInput(image=noise_image(1, (300, 200)), text=None, ocr_text=None),
        ScoringInput(
            image=noise_image(2, (90, 240)),
            text="a much longer caption with many more words in it, so rows differ in length",
            ocr_text="call 555 0100",
        ),
    ]
