"""Post-training with TRL + PEFT on a tiny real-architecture VLM: the loss goes down, the
adapter loads back through model.loading and changes the scores; DPO and QLoRA on CPU run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from storage.db import make_engine, unit_of_work
from storage.models import ModelVersion
from storage.settings import ModelSettings, Settings
from tests.training.test_dataset import POLICY, small_corrected_dataset
from training.dataset import BuildOptions
from training.posttrain import PostTrainConfig, post_train, register_run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "internvl", "internvl", seed=0)


@pytest.fixture
def data(sqlite_settings: Settings, tmp_path: Path) -> Path:
    """A small dataset from a real ledger; the model m0 flagged nothing, so every violating
    item is a correction (preference pairs)."""
    options = BuildOptions(golden_fraction=0.0, val_fraction=0.0, replay_ratio=0.0, balance_cap=0)
    return small_corrected_dataset(sqlite_settings, tmp_path, 12, 5, options)


def _scores(model_dir: Path, adapter: Path | None, data: Path) -> list[dict[str, float]]:
    from model.backends import ScoringInput
    from model.loading import load_backend
    from training.dataset import load_items

    backend = load_backend(
        ModelSettings(
            name=str(model_dir),
            adapter=str(adapter) if adapter else None,
            device="cpu",
            quant="none",
            dtype="float32",
        )
    )
    import io

    from PIL import Image

    items = [
        ScoringInput(
            image=Image.open(io.BytesIO(r["image"]["bytes"])).convert("RGB"), ocr_text=r["ocr_text"]
        )
        for r in load_items(data, "train")[:3]
    ]
    return [v.scores for v in backend.score(items, POLICY)]


def test_sft_lora_learns_and_adapter_loads_back(
    tiny: Path, data: Path, tmp_path: Path, sqlite_settings: Settings
) -> None:
    cfg = PostTrainConfig(
        method="sft", lr=1e-2, max_steps=8, batch_size=8, logging_steps=1, lora_r=8, save_steps=4
    )
    res = post_train(str(tiny), data, tmp_path / "run", cfg, policy=POLICY)
    sft = res.metrics["sft"]
    assert len(sft["losses"]) == 8
    assert sft["last_loss"] < sft["first_loss"] - 0.5, sft["losses"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["data_hash"] == res.data_hash and manifest["config"]["method"] == "sft"
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").exists()
    assert list((tmp_path / "run" / "checkpoints-sft").glob("checkpoint-*"))
    adapter_cfg = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert "language_model" in str(adapter_cfg["target_modules"])  # vision tower untouched

    before = _scores(tiny, None, data)
    after = _scores(tiny, Path(res.adapter), data)
    diff = max(abs(a[c] - b[c]) for a, b in zip(after, before, strict=True) for c in POLICY.ids)
    assert diff > 0.05, diff

    # Resume continues from the last checkpoint instead of starting over.
    cfg2 = PostTrainConfig(
        method="sft", lr=5e-3, max_steps=10, batch_size=8, logging_steps=1, save_steps=4
    )
    (tmp_path / "run" / "manifest.json").unlink()
    res2 = post_train(str(tiny), data, tmp_path / "run", cfg2, resume=True, policy=POLICY)
    assert res2.metrics["sft"]["resumed_from"].endswith("checkpoint-8")
    assert res2.metrics["sft"]["global_step"] == 10

    engine = make_engine(sqlite_settings.database_url)
    with unit_of_work(engine) as s:
        info = register_run(s, res, name="cand-1", actor="eng")
        assert info.status == "candidate" and info.adapter_uri == res.adapter
    with unit_of_work(engine) as s:
        from sqlalchemy import select

        assert s.scalars(select(ModelVersion)).one().manifest["data_hash"] == res.data_hash
    engine.dispose()


def test_dpo_on_corrections(tiny: Path, data: Path, tmp_path: Path) -> None:
    cfg = PostTrainConfig(method="sft+dpo", lr=5e-3, max_steps=3, batch_size=4, logging_steps=1)
    res = post_train(str(tiny), data, tmp_path / "run", cfg, policy=POLICY)
    assert res.metrics["dpo"]["pairs"] > 0
    assert res.metrics["dpo"]["losses"]


@pytest.mark.slow
def test_qlora_on_cpu(tiny: Path, data: Path, tmp_path: Path) -> None:
    cfg = PostTrainConfig(
        method="sft", qlora=True, lr=5e-3, max_steps=3, batch_size=4, logging_steps=1
    )
    res = post_train(str(tiny), data, tmp_path / "run", cfg, policy=POLICY)
    assert len(res.metrics["sft"]["losses"]) == 3
    assert all(x == x for x in res.metrics["sft"]["losses"])  # no NaN
    assert (Path(res.adapter) / "adapter_model.safetensors").exists()


def test_negative_subsampling_keeps_every_yes_and_optionally_all_replay_rows() -> None:
    from model import prompts
    from training.posttrain import subsample_negatives

    def rows(key: str, yes: set[int], origin: str | None) -> list[dict]:
        return [
            {
                "key": key,
                "images": [key],
                "completion": prompts.answer_messages(prompts.yes_no(i in yes)),
                **({"origin": origin} if origin else {}),
            }
            for i in range(11)
        ]

    new = rows("new", {3}, None)
    replay = rows("old", {5}, "replay:manifest")

    def answers(kept: list[dict], key: str) -> list[str]:
        return [r["completion"][0]["content"][0]["text"] for r in kept if r["key"] == key]

    kept = subsample_negatives(new + replay, 2, seed=0)
    assert sorted(answers(kept, "new")) == ["No", "No", "Yes"]
    assert sorted(answers(kept, "old")) == ["No", "No", "Yes"]
    kept = subsample_negatives(new + replay, 2, seed=0, keep_replay=True)
    assert sorted(answers(kept, "new")) == ["No", "No", "Yes"]
    assert answers(kept, "old").count("No") == 10


def cpu_sft_args(output_dir: Path, **overrides: Any) -> Any:
    """TRL's SFTConfig as the loss tests use it: CPU, float32, no reports, prompt masked, the
    rows' own columns kept (answer weights), no length cap; `overrides` on top."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output_dir),
        use_cpu=True,
        report_to="none",
        max_length=None,
        completion_only_loss=True,
        remove_unused_columns=False,
        bf16=False,
        **overrides,
    )


def test_answer_only_loss_equals_trls_full_sequence_loss(tiny: Path, data: Path) -> None:
    """The LM head sees only the answer positions, and the loss is TRL's own (all positions
    projected) to float precision, gradients included."""
    import torch
    from trl import SFTTrainer

    from training.answer_loss import AnswerLossSFTTrainer, answer_positions
    from training.dataset import load_trl_split
    from training.posttrain import PostTrainConfig, load_for_training, to_text_rows

    model, processor = load_for_training(str(tiny), PostTrainConfig(lora_r=4))
    rows = to_text_rows(load_trl_split(data, "sft", "train")[:6], processor)
    import datasets

    args = cpu_sft_args(data / "tmp-trainer")
    train = datasets.Dataset.from_list(rows)
    ours = AnswerLossSFTTrainer(
        model=model, args=args, train_dataset=train, processing_class=processor
    )
    trl = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=processor)
    batch = ours.data_collator([dict(r) for r in rows])
    assert int(answer_positions(batch["labels"]).sum()) == int((batch["labels"] != -100).sum())

    def loss_and_grad(trainer: Any) -> tuple[float, torch.Tensor]:
        model.zero_grad()
        loss = trainer.compute_loss(model, {k: v.clone() for k, v in batch.items()})
        loss.backward()
        lora = [p for n, p in model.named_parameters() if "lora_A" in n and p.grad is not None]
        return float(loss), torch.cat([p.grad.flatten() for p in lora])

    model.train()
    a_loss, a_grad = loss_and_grad(ours)
    b_loss, b_grad = loss_and_grad(trl)
    assert a_loss > 0 and abs(a_loss - b_loss) < 1e-5 * max(1.0, b_loss), (a_loss, b_loss)
    assert torch.allclose(a_grad, b_grad, rtol=1e-4, atol=1e-7)


def test_held_rows_learn_the_live_models_answers(tiny: Path, data: Path) -> None:
    """`hold`: a row's answer position also pays KL(live || candidate), the live model being
    the base with the adapter disabled; zero while the adapter is the identity, and only on
    held rows."""
    import datasets
    import torch

    from training.answer_loss import AnswerLossSFTTrainer, answer_positions
    from training.dataset import load_trl_split
    from training.posttrain import PostTrainConfig, load_for_training, to_text_rows

    model, processor = load_for_training(str(tiny), PostTrainConfig(lora_r=4))
    rows = to_text_rows(load_trl_split(data, "sft", "train")[:6], processor)
    holds = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    args = cpu_sft_args(data / "tmp-trainer")
    train = datasets.Dataset.from_list(rows)
    plain = AnswerLossSFTTrainer(
        model=model, args=args, train_dataset=train, processing_class=processor
    )
    holding = AnswerLossSFTTrainer(
        model=model, args=args, train_dataset=train, processing_class=processor, hold_weight=2.0
    )
    batch = holding.data_collator([dict(r) | {"hold": h} for r, h in zip(rows, holds, strict=True)])
    assert batch["hold"].tolist() == holds
    model.train()

    def loss(trainer: Any) -> torch.Tensor:
        return trainer.compute_loss(model, {k: v.clone() for k, v in batch.items()})

    # A fresh LoRA adapter is the identity: nothing to hold yet.
    assert abs(float(loss(holding)) - float(loss(plain))) < 1e-6
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    # By hand: the two models' answer distributions on the held rows.
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "hold")}
    keep = answer_positions(batch["labels"])
    with torch.no_grad():
        cand = model(**inputs, use_cache=False, logits_to_keep=keep).logits.float()
        with model.disable_adapter():
            live = model(**inputs, use_cache=False, logits_to_keep=keep).logits.float()
    rows_of = keep.nonzero()[:, 0]
    held = torch.tensor(holds)[rows_of] > 0
    log_p, log_q = cand.log_softmax(-1)[held], live.log_softmax(-1)[held]
    kl = float((log_q.exp() * (log_q - log_p)).sum())
    assert kl > 1e-3
    n = int(keep.sum())
    extra = float(loss(holding)) - float(loss(plain))
    assert abs(extra - 2.0 * kl / n) < 1e-4 * max(1.0, extra), (extra, 2.0 * kl / n)
    # It trains the adapter towards the live model: gradients reach LoRA through the KL.
    model.zero_grad()
    (loss(holding) - loss(plain)).backward()
    grads = [p.grad for n_, p in model.named_parameters() if "lora_" in n_ and p.grad is not None]
    assert grads and max(float(g.abs().max()) for g in grads) > 0


def test_content_tokens_train_their_embeddings_and_nothing_else(
    tiny: Path, data: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoProcessor

    from model import prompts, scoring
    from model.loading import load_backend
    from training.dataset import load_trl_split
    from training.posttrain import content_token_ids

    proc = AutoProcessor.from_pretrained(tiny)
    tok = proc.tokenizer
    rows = load_trl_split(data, "sft", "train")
    ids = content_token_ids(rows, proc, POLICY)
    yes, no = scoring.answer_token_ids(tok)
    assert ids and yes not in ids and no not in ids
    assert not set(ids) & set(tok.all_special_ids)
    bare = proc.apply_chat_template(
        prompts.build_messages(
            POLICY, text=None, ocr_text="", question=prompts.category_question(POLICY.categories[0])
        ),
        add_generation_prompt=True,
        tokenize=False,
    )
    template = tok(bare, add_special_tokens=False)["input_ids"]
    assert not set(template) & set(ids)  # the prompt's own words stay frozen
    replay_only = [dict(r, origin="replay:manifest") for r in rows]
    assert content_token_ids(replay_only, proc, POLICY) == []  # replay brings nothing new

    cfg = PostTrainConfig(
        method="sft", lr=1e-2, max_steps=4, batch_size=8, logging_steps=1, tune_content_tokens=True
    )
    res = post_train(str(tiny), data, tmp_path / "run", cfg, policy=POLICY)
    assert res.metrics["content_tokens"] == len(ids)

    def embed(adapter: str | None, token_ids: list[int]) -> torch.Tensor:
        backend = load_backend(
            ModelSettings(
                name=str(tiny), adapter=adapter, device="cpu", quant="none", dtype="float32"
            )
        )
        with torch.no_grad():
            return backend.model.get_input_embeddings()(torch.tensor([token_ids]))[0]

    frozen = [yes, no, *template[-8:]]
    before, after = embed(None, ids + frozen), embed(res.adapter, ids + frozen)
    moved = (after - before).abs().amax(-1)
    assert (moved[: len(ids)] > 0).float().mean() > 0.9, moved[: len(ids)]
    assert torch.equal(moved[len(ids) :], torch.zeros(len(frozen)))


def test_the_datasets_reader_goes_with_the_adapter(tiny: Path, data: Path, tmp_path: Path) -> None:
    """A dataset built with a reader (model.reading) hands it to the candidate: saved beside
    the adapter, loaded with it, and applied to the OCR hint at serving."""
    from PIL import Image

    from model.backends import ScoringInput
    from model.loading import load_backend
    from model.reading import READING_FILE, Channel, Reader

    Reader(Channel({"e": {"3": 0.6}}), {"free": 3, "money": 2}).save(data)
    cfg = PostTrainConfig(method="sft", max_steps=1, batch_size=4, save_steps=100)
    res = post_train(str(tiny), data, tmp_path / "run", cfg, policy=POLICY)
    assert (Path(res.adapter) / READING_FILE).is_file()
    assert res.metrics["reading"] == {"swaps": 1, "lexicon_words": 2}
    backend = load_backend(
        ModelSettings(
            name=str(tiny), adapter=res.adapter, device="cpu", quant="none", dtype="float32"
        )
    )
    assert backend.reader is not None
    item = ScoringInput(image=Image.new("RGB", (32, 32)), ocr_text="fr33 m0n3y")
    assert backend.read(item).ocr_text == "free m0n3y"  # o->0 was never learnt
    [verdict] = backend.score([item], POLICY)
    assert verdict.ocr_text == "fr33 m0n3y" and verdict.signals["ocr_read_as"] == "free m0n3y"
