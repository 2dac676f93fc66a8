"""Grounding rows in post-training (training.grounding_sft): the loss covers a box answer's
tokens and nothing of the prompt; a short run on a tiny real InternVL learns to answer with
the stored box; the demo base, which cannot see images, skips them and says why; a verdict
asked for boxes gets the tokens they take.

Run: WARDEN_TEST_NO_PG=1 .venv/bin/python -m pytest tests/training/test_posttrain_grounding.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.db import make_engine, unit_of_work
from storage.decisions import record_decision
from storage.settings import Settings
from tests.training.test_dataset import POLICY, _build, _ingest, _item_ids, _predict
from tests.training.test_posttrain import cpu_sft_args
from training.posttrain import PostTrainConfig, post_train

# Every violating item's annotator drew the same box on its 96 px image: InternVL's answer is
# <ref>{category}</ref><box>[[250, 500, 750, 1000]]</box>.
BOX = [24.0, 48.0, 72.0, 96.0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "internvl", "internvl", seed=0)


@pytest.fixture
def grounded(sqlite_settings: Settings, tmp_path: Path) -> Path:
    """A dataset whose violating items carry a Label Studio decision with one box of their
    first category; train and validation both hold grounding rows."""
    rows = _ingest(sqlite_settings, tmp_path / "in", 16, seed=5)
    engine = make_engine(sqlite_settings.database_url)
    with unit_of_work(engine) as s:
        ids = _item_ids(s)
        for n, (name, rec) in enumerate(sorted(rows.items())):
            _predict(s, ids[name], [], rec["rendered_text"])
            if rec["labels"]:
                region = {"position": 0, "category": rec["labels"][0], "box": BOX,
                          "image_size": [96, 96], "source": "label_studio"}  # fmt: skip
                record_decision(
                    s,
                    item_id=ids[name],
                    categories=list(rec["labels"]),
                    source="label_studio",
                    reviewer="ann@warden.test",
                    policy=POLICY,
                    external_ref=f"ls:1:{n}:2026-12-01T00:00:00.000000Z",
                    meta={"regions": [region]},
                )
    engine.dispose()
    info = _build(
        sqlite_settings,
        tmp_path / "ds",
        golden_fraction=0.0,
        val_fraction=0.3,
        learn_reading=False,
        benign_share=0.0,
        replay_ratio=0.0,
        balance_cap=1000.0,
        dedup_distance=0,
    )
    g = info.counts["grounding"]
    assert g["train"] >= 3 and g["validation"] >= 1, g
    return Path(info.path)


def _text(messages: list[dict]) -> str:
    return messages[0]["content"][0]["text"]


def test_grounding_loss_is_over_the_answer_tokens_only(tiny: Path, grounded: Path) -> None:
    """A batch of Yes/No and box rows: each box row's labels are exactly its answer's tokens
    and the end-of-turn token (the prompt masked), and the trainer's loss equals a hand-built
    cross-entropy over the full-sequence logits at those tokens, box tokens weighted."""
    import datasets
    import torch

    from training import grounding_sft
    from training.answer_loss import AnswerLossSFTTrainer
    from training.dataset import load_trl_split
    from training.posttrain import load_for_training, to_text_rows

    model, processor = load_for_training(str(tiny), PostTrainConfig(lora_r=4))
    tok = processor.tokenizer
    weight = 0.5
    yes_no = [r | {"answer_weight": 1.0} for r in to_text_rows(
        load_trl_split(grounded, "sft", "train")[:2], processor)]  # fmt: skip
    boxes = load_trl_split(grounded, "grounding", "train")[:2]
    rows = yes_no + grounding_sft.text_rows(boxes, processor, weight)
    assert grounding_sft.turn_end(processor) == "<|im_end|>"
    assert rows[2]["completion"] == _text(boxes[0]["completion"]) + "<|im_end|>"
    assert rows[2]["completion"].startswith("<ref>") and "[[250, 500, 750, 1000]]" in rows[2][
        "completion"]  # fmt: skip
    args = cpu_sft_args(grounded / "tmp-trainer")
    trainer = AnswerLossSFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=processor,
    )
    batch = trainer.data_collator([dict(r) for r in rows])
    assert batch["answer_weight"].tolist() == [1.0, 1.0, weight, weight]
    labels = batch["labels"]
    for b, row in enumerate(rows):
        want = tok(row["completion"], add_special_tokens=False)["input_ids"]
        got = labels[b][labels[b] != -100].tolist()
        assert got == want, (b, tok.decode(got), row["completion"])
        # The labelled tokens are the row's last real tokens: nothing of the prompt is.
        real = batch["input_ids"][b][batch["attention_mask"][b] == 1].tolist()
        assert real[-len(want) :] == want
    assert all(len(labels[b][labels[b] != -100]) > 10 for b in (2, 3))  # multi-token answers

    model.train()
    loss = trainer.compute_loss(model, {k: v.clone() for k, v in batch.items()})
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "answer_weight")}
        logits = model(**inputs, use_cache=False).logits.float()  # every position
    total, n = 0.0, 0
    for b in range(len(rows)):
        for t in range(labels.shape[1] - 1):
            target = int(labels[b, t + 1])
            if target == -100:
                continue
            ce = float(
                torch.nn.functional.cross_entropy(logits[b, t][None], labels[b, t + 1][None])
            )
            total += ce * float(batch["answer_weight"][b])
            n += 1
    assert n == int((labels != -100).sum())
    assert abs(float(loss) - total / n) < 1e-4 * max(1.0, total / n), (float(loss), total / n)


def test_short_run_lowers_validation_grounding_loss_and_reports_iou(
    tiny: Path, grounded: Path, tmp_path: Path
) -> None:
    """Grounding rows join the SFT stage, weighted; a short run lowers the answer loss on the
    validation grounding rows (items never trained on) and the run reports it, with the mean
    IoU of the greedy answers' boxes parsed through model.grounding."""
    cfg = PostTrainConfig(
        method="sft",
        lr=1e-2,
        max_steps=40,
        batch_size=4,
        logging_steps=5,
        save_steps=1000,
        negatives_per_image=0,
        choose_checkpoint=False,
        # Weighted up: the tiny model otherwise answers the grounding question like the Yes
        # rows beside it (its first answer token), which outnumber the box rows.
        grounding_weight=5.0,
    )
    res = post_train(str(tiny), grounded, tmp_path / "run", cfg, policy=POLICY)
    g = res.metrics["grounding"]
    assert g["status"] == "trained" and g["format"] == "internvl", g
    assert g["train_rows"] >= 3 and res.metrics["sft"]["grounding_rows"] == g["train_rows"]
    val = g["validation"]
    before = g["validation_before"]["loss"]
    # The tiny model's frozen, tied LM head after a fixed-norm final RMSNorm keeps its
    # probabilities flat (ln 768 = 6.6 nats is the uniform loss; 40 steps reach about 5.7):
    # the validation rows' answer loss falls clearly. Greedy answers are generated and
    # parsed for every stored box; 40 CPU steps do not yet give the tiny model the whole
    # 43-token answer, so the IoU is reported, not asserted.
    assert val["rows"] >= 1 and val["loss"] < before - 0.5, (before, val)
    assert val["boxes"] >= val["rows"] and len(val["examples"]) == min(3, val["rows"])
    assert 0.0 <= val["mean_iou"] <= 1.0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["metrics"]["grounding"]["validation"]["mean_iou"] == val["mean_iou"]


@pytest.mark.slow
def test_overfit_on_a_handful_of_rows_answers_the_right_box(tiny: Path, grounded: Path) -> None:
    """Three grounding rows alone, trained with the post-training trainer and rows: the
    greedy answers parse, through model.grounding, into the stored box (IoU near 1)."""
    import datasets

    from training import grounding_sft
    from training.answer_loss import AnswerLossSFTTrainer
    from training.dataset import load_trl_split
    from training.posttrain import load_for_training

    model, processor = load_for_training(str(tiny), PostTrainConfig(lora_r=8))
    rows = load_trl_split(grounded, "grounding", "train")[:3]
    before = grounding_sft.evaluate(model, processor, rows, POLICY, "internvl")
    args = cpu_sft_args(
        grounded / "tmp-overfit",
        per_device_train_batch_size=3,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        max_steps=70,
        save_strategy="no",
        logging_steps=10,
        dataloader_num_workers=0,
    )
    train = datasets.Dataset.from_list(grounding_sft.text_rows(rows, processor, 1.0))
    AnswerLossSFTTrainer(
        model=model, args=args, train_dataset=train, processing_class=processor
    ).train()
    after = grounding_sft.evaluate(model, processor, rows, POLICY, "internvl")
    assert before["answers_with_boxes"] == 0, before
    assert after["answers_with_boxes"] == 3 and after["mean_iou"] > 0.9, after
    assert after["loss"] < before["loss"] - 0.5, (before, after)


def test_the_demo_base_skips_grounding_and_says_why(grounded: Path, tmp_path: Path) -> None:
    from training import grounding_sft

    demo = str(Path(__file__).resolve().parents[2] / "assets" / "model" / "demo")
    cfg = PostTrainConfig(
        method="sft",
        max_steps=1,
        batch_size=2,
        negatives_per_image=0,
        choose_checkpoint=False,
        save_steps=1000,
    )
    res = post_train(demo, grounded, tmp_path / "run", cfg, policy=POLICY)
    g = res.metrics["grounding"]
    assert g["status"] == "skipped" and "cannot see images" in g["reason"], g
    assert res.metrics["sft"]["grounding_rows"] == 0 and "validation" not in g
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["metrics"]["grounding"]["reason"] == g["reason"]
    # The other reasons are plain too.
    rows, info = grounding_sft.training_rows(demo, grounded, 0.0, has_sft=True)
    assert rows == [] and info["reason"] == "grounding_weight is 0"
    rows, info = grounding_sft.training_rows(demo, grounded, 1.0, has_sft=False)
    assert rows == [] and "no SFT stage" in info["reason"]


def test_answer_parsing_reads_each_native_format() -> None:
    from training.grounding import answer_text
    from training.grounding_sft import parse_answer

    region = {"box": BOX, "image_size": [96, 96]}
    for fmt in ("internvl", "qwen2_vl", "qwen2_5_vl"):
        text = answer_text(fmt, "drugs", [region, region])  # type: ignore[arg-type]
        got = parse_answer(text, fmt, "drugs", POLICY, (96, 96), None)
        assert len(got) == 2, (fmt, text)
        assert all(abs(a - b) <= 1.0 for a, b in zip(got[0]["box"], BOX, strict=True)), got
    assert parse_answer("<ref>drugs</ref><box>[[1, 2]]</box>", "internvl", "drugs", POLICY,
                        (96, 96), None) == []  # fmt: skip
    assert parse_answer("no json", "qwen2_5_vl", "drugs", POLICY, (96, 96), None) == []


def test_verdict_budget_covers_a_box_per_category(tiny: Path) -> None:
    """160 new tokens (the old fixed budget) cannot hold a verdict with one box per category;
    unless a number is configured, a grounding model's budget is raised to what the worst
    case takes with its tokenizer."""
    from transformers import AutoProcessor

    from model.grounding import verdict_max_new_tokens, worst_case_verdict
    from model.rationale import parse_rationale

    tok = AutoProcessor.from_pretrained(tiny).tokenizer
    worst = worst_case_verdict(POLICY, 1)
    reply = parse_rationale(worst, POLICY)
    assert reply is not None and len(reply.boxes or []) == len(POLICY.ids)
    needed = len(tok(worst, add_special_tokens=False)["input_ids"])
    assert needed > 160, needed
    assert verdict_max_new_tokens(None, POLICY, "norm1000", 1, tok) >= needed
    assert verdict_max_new_tokens(None, POLICY, None, 1, tok) == 160  # not asked for boxes
    assert verdict_max_new_tokens(24, POLICY, "pixels", 1, tok) == 24  # a set number is kept
    # Posts: one box per category per image, at most model.grounding.MAX_BOXES.
    assert verdict_max_new_tokens(None, POLICY, "norm1000", 3, tok) > verdict_max_new_tokens(
        None, POLICY, "norm1000", 1, tok
    )
    assert verdict_max_new_tokens(None, POLICY, "norm1000", 1) >= needed  # no tokenizer
