"""Recipes are validated with pydantic: YAML's strings become the numbers a field asks for,
wrong types, unknown keys and values out of range are errors that name the file and the key,
and `warden train post` reports them as `Error: FILE: KEY: ...` with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from storage.errors import WardenError
from training.recipes import load_recipe


def _recipe(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_exponent_without_a_dot_is_a_float_not_a_string(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) reads `2e-4` as the string '2e-4'; the field is a float.
    r = load_recipe(_recipe(tmp_path, "name: x\npost:\n  lr: 2e-4\nmid:\n  lr: 1e-3\n"))
    assert r.post.lr == pytest.approx(2e-4) and isinstance(r.post.lr, float)
    assert r.mid.lr == pytest.approx(1e-3) and isinstance(r.mid.lr, float)


@pytest.mark.parametrize(
    ("body", "key", "what"),
    [
        ("post:\n  lr: fast\n", "post.lr", "number"),
        ("post:\n  lr: -0.1\n", "post.lr", "greater than 0"),
        ("post:\n  lora_dropout: 1.5\n", "post.lora_dropout", "less than"),
        ("post:\n  method: rlhf\n", "post.method", "sft"),
        ("post:\n  batch_size: 0\n", "post.batch_size", "greater than"),
        ("mid:\n  ocr_noise: 2\n", "mid.ocr_noise", "less than"),
        ("mid:\n  train_modules: model.x\n", "mid.train_modules", "tuple"),
        ("demo:\n  arch:\n    text_layers: two\n", "demo.arch.text_layers", "integer"),
        ("demo:\n  n_train: 10\n  colour: red\n", "demo.colour", "unknown key 'colour'"),
        ("post:\n  lerning_rate: 1\n", "post.lerning_rate", "unknown key 'lerning_rate'"),
        ("post: 3\n", "post", "mapping"),
    ],
)
def test_bad_values_name_the_file_and_the_key(
    tmp_path: Path, body: str, key: str, what: str
) -> None:
    path = _recipe(tmp_path, "name: x\n" + body)
    with pytest.raises(WardenError) as err:
        load_recipe(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert what in message


def test_shipped_recipes_still_validate() -> None:
    demo = load_recipe("demo")
    assert demo.post.lr == pytest.approx(0.001) and demo.demo.arch.text_hidden == 256
    big = load_recipe("internvl3_5-2b")
    assert big.post.qlora and isinstance(big.post.lr, float)


def test_train_post_with_an_invalid_recipe_says_file_and_key_and_exits_2(tmp_path: Path) -> None:
    path = _recipe(tmp_path, "name: x\npost:\n  epochs: many\n")
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "train", "post", "--base", "demo", "--data",
         str(tmp_path / "no-data"), "--out", str(tmp_path / "run"), "--recipe", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"WARDEN_DATA_DIR": str(tmp_path / "wd"), "PATH": "/usr/bin:/bin",
             "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"Error: {path}: post.epochs: " in proc.stderr
    assert "Traceback" not in proc.stderr
