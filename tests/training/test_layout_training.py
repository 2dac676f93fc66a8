"""Training in the model's prompt layout (issue 19): `warden dataset build --layout BASE` writes
every prompt in the layout the base declares, exactly as the scorer builds it; post-training
refuses a dataset in another layout (an old card reads as "question"), and the adapter declares
the layout it was trained on, so the serving backend scores it in that layout.

Run: WARDEN_TEST_NO_PG=1 .venv/bin/pytest tests/training/test_layout_training.py -q
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from model import prompts
from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.errors import WardenError
from storage.settings import ModelSettings, Settings, get_settings
from tests.training.test_dataset import (
    POLICY,
    _build,
    _ingest,
    _item_ids,
    _predict,
    training_cli,
)
from training import cli
from training.dataset import card_layout, load_items, read_card, row_input
from training.grounding import grounding_question


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "internvl", "internvl", seed=0)


@pytest.fixture(scope="module")
def policy_base(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's folder, declaring the "policy" layout."""
    base = tmp_path_factory.mktemp("policy") / "base"
    shutil.copytree(tiny, base)
    prompts.write_model_layout(base, "policy")
    return base


def _ledger(settings: Settings, tmp_path: Path, n: int, seed: int) -> None:
    """`n` SynthMod items that a model flagged nothing on; the first harmful one has a box."""
    rows = _ingest(settings, tmp_path / "in", n, seed=seed)
    engine = make_engine(settings.database_url)
    with unit_of_work(engine) as s:
        ids = _item_ids(s)
        for name, rec in rows.items():
            _predict(s, ids[name], [], rec["rendered_text"])
        boxed = next(n for n in sorted(rows) if rows[n]["labels"])
        cat = rows[boxed]["labels"][0]
        record_decision(
            s,
            item_id=ids[boxed],
            categories=list(rows[boxed]["labels"]),
            source="label_studio",
            reviewer="ann@warden.test",
            policy=POLICY,
            external_ref="ls:1:1:2026-12-01T00:00:00.000000Z",
            meta={
                "regions": [
                    {"position": 0, "category": cat, "box": [8, 8, 64, 64], "image_size": [96, 96]}
                ]
            },
        )
    engine.dispose()


_OPTIONS = dict(
    golden_fraction=0.0,
    val_fraction=0.0,
    replay_ratio=0.0,
    balance_cap=0,
    learn_reading=False,
    benign_share=0.0,
    dedup_distance=0,
)


def _text(message: dict) -> str:
    return message["content"][-1]["text"]


def test_dataset_build_writes_every_prompt_in_the_base_models_layout(
    settings: Settings,
    tmp_path: Path,
    tiny: Path,
    policy_base: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from model.loading import load_backend
    from model.scoring import render_prompt_parts

    _ledger(settings, tmp_path, 10, seed=5)
    with training_cli(settings, monkeypatch) as invoke:
        args = ["dataset", "build", "--no-reading", "--benign-share", "0"]
        args += ["--val-fraction", "0", "--golden-fraction", "0"]
        res = invoke([*args, "--out", str(tmp_path / "p"), "--layout", str(tiny)])
        assert res.exit_code == 0, res.output
        assert "question prompt layout" in res.stdout  # a base without the file: the default
        res = invoke([*args, "--out", str(tmp_path / "d"), "--layout", str(policy_base)])
        assert res.exit_code == 0, res.output
        bad = invoke([*args, "--out", str(tmp_path / "x"), "--layout", "qa"])
        assert bad.exit_code != 0 and "use one of question, policy" in bad.output
    out = tmp_path / "d"
    card = read_card(out)
    assert card["layout"] == "policy" and card_layout(card) == "policy"
    assert "Prompt layout: `policy`" in (out / "README.md").read_text()
    # The same ledger in the other layout is another dataset: another data hash.
    assert read_card(tmp_path / "p")["data_hash"] != card["data_hash"]

    # Each SFT prompt, rendered by the model's chat template as training renders it, is the
    # prompt the serving scorer builds for that item and category in the "policy" layout.
    proc = load_backend(
        ModelSettings(name=str(policy_base), quant="none", dtype="float32", device="cpu")
    ).processor
    items = {r["key"]: row_input(r) for r in load_items(out, "train")}
    index = {c.id: i for i, c in enumerate(POLICY.categories)}
    sft = pq.read_table(out / "data" / "sft-train.parquet").to_pylist()
    prefs = pq.read_table(out / "data" / "preference-train.parquet").to_pylist()
    assert sft and prefs
    parts = {
        k: render_prompt_parts(proc, POLICY, text=i.text, ocr_text=i.ocr_text, layout="policy")
        for k, i in items.items()
    }
    for row in sft + prefs:
        got = proc.apply_chat_template(
            json.loads(row["prompt"]), add_generation_prompt=True, tokenize=False
        )
        p = parts[row["key"]]
        assert got == p.prefix + p.suffixes[index[row["category"]]], row["category"]
    # The grounding row: the policy in the system turn, a short question naming the category.
    (ground,) = pq.read_table(out / "data" / "grounding-train.parquet").to_pylist()
    system, user = json.loads(ground["prompt"])
    assert _text(system) == prompts.system_text(POLICY, "policy")
    cat = POLICY.category(ground["category"])
    assert _text(user).endswith(grounding_question(POLICY, cat.id, layout="policy"))
    assert cat.description not in _text(user)


def test_post_train_in_the_policy_layout_serves_in_it_and_refuses_a_mismatch(
    sqlite_settings: Settings, tmp_path: Path, tiny: Path, policy_base: Path
) -> None:
    from model.loading import load_backend
    from model.scoring import score_naive
    from training.posttrain import PostTrainConfig, check_layouts, post_train

    _ledger(sqlite_settings, tmp_path, 10, seed=7)
    data = Path(_build(sqlite_settings, tmp_path / "d", layout="policy", **_OPTIONS).path)

    # A base that declares another layout than the dataset's is refused before anything loads.
    with pytest.raises(WardenError, match="'policy' layout but the base model .* 'question'"):
        post_train(str(tiny), data, tmp_path / "wrong", policy=POLICY)
    assert not (tmp_path / "wrong").exists()
    # A dataset from before layouts (no "layout" in its card) holds "question" prompts.
    old = tmp_path / "old"
    shutil.copytree(data, old)
    card = read_card(old)
    del card["layout"]
    (old / "card.json").write_text(json.dumps(card))
    assert card_layout(card) == "question" and check_layouts(str(tiny), old) == "question"
    with pytest.raises(WardenError, match="'question' layout but the base model"):
        post_train(str(policy_base), old, tmp_path / "old-run", policy=POLICY)

    cfg = PostTrainConfig(method="sft", lr=1e-2, max_steps=4, batch_size=8, save_steps=4)
    res = post_train(str(policy_base), data, tmp_path / "run", cfg, policy=POLICY)
    assert prompts.model_layout(res.adapter) == "policy" and res.manifest["layout"] == "policy"

    # Served over a base folder that declares nothing, the adapter's own file still decides.
    backend = load_backend(
        ModelSettings(
            name=str(tiny), adapter=res.adapter, quant="none", dtype="float32", device="cpu"
        )
    )
    assert backend.layout == "policy"
    inputs = [row_input(r) for r in load_items(data, "train")[:3]]
    served = [v.scores for v in backend.score(inputs, POLICY)]
    m, proc = backend.model, backend.processor
    differs = 0.0
    for item, got in zip(inputs, served, strict=True):
        want = score_naive(m, proc, item, POLICY, layout="policy")
        other = score_naive(m, proc, item, POLICY, layout="question")
        for cid in POLICY.ids:
            assert got[cid] == pytest.approx(want[cid], abs=1e-4), cid
        differs = max(differs, *(abs(got[c] - other[c]) for c in POLICY.ids))
    assert differs > 1e-3  # scored in the question layout, the same model says otherwise


def test_a_retrain_turn_trains_in_the_layout_the_live_models_base_declares(
    settings: Settings, tmp_path: Path, policy_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.training.test_retrain import TINY_RECIPE

    for key, value in (("DATABASE_URL", settings.database_url), ("MODEL__DEVICE", "cpu"),
                       ("DATA_DIR", str(settings.data_dir)), ("MODEL__QUANT", "none"),
                       ("MODEL__DTYPE", "float32")):  # fmt: skip
        monkeypatch.setenv(f"WARDEN_{key}", value)
    get_settings.cache_clear()
    app = typer.Typer()
    cli.register(app)
    run = CliRunner().invoke
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    _ledger(settings, tmp_path, 12, seed=9)
    try:
        args = ["models", "register", "live0", "--uri", str(policy_base), "--live"]
        res = run(app, [*args, "--recipe", str(recipe)])
        assert res.exit_code == 0, res.output
        # A benign tolerance below zero refuses whatever the candidate does: the turn still
        # runs every stage, and refuses deterministically.
        res = run(app, ["retrain", "--work", str(tmp_path / "work"), "--benign-tolerance", "-1",
                        "--benign-golden", "8", "--json"])  # fmt: skip
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert card_layout(read_card(Path(out["dataset"]))) == "policy"
    assert prompts.model_layout(Path(out["run"]) / "adapter") == "policy"
