"""Post-train a VLM on curated analyst corrections: LoRA / QLoRA through PEFT, SFT and DPO
through TRL.

The objective is the scorer's: each row is one category question about one image (the prompt
`model.prompts.build_messages` builds, OCR hint included), and the completion is "Yes" or
"No". Prompts are rendered with the base model's own chat template exactly as
`model.scoring.render_prompt_parts` renders them for serving, then handed to TRL as
prompt/completion text with the image, so only the answer token is trained. DPO uses the
preference pairs (chosen = the analyst's answer, rejected = the model's).

The dataset's grounding rows (where a decided category is, in the base's own box format) join
the SFT rows when the base can see images (training.grounding_sft): their whole box answer is
trained, weighted by `grounding_weight`, and the validation grounding rows are measured after
training (answer-token loss, mean IoU of the greedy answers' boxes). A base that cannot see
images (the demo) skips them, and the run's metrics say why (`metrics["grounding"]`).

The vision tower and projector stay frozen by default (LoRA targets the language model's
linear layers). Runs on CPU (`use_cpu=True`) or one GPU, and under `accelerate launch` on
several (no device is hard-coded; QLoRA puts each process's copy on its own GPU). Checkpoints
are written every `save_steps`; `resume=True` continues from the last one. The run writes
`OUT/manifest.json` (base, data hash, config, metrics, git commit) and the adapter to
`OUT/adapter/`, and can register the result as a candidate in `model_versions`.

The dataset's prompt layout (model.prompts: its card's "layout", "question" for a card from
before layouts) must be the one the base declares (`model.prompts.model_layout`): a model
trained on one layout and served with the other is asked questions it never saw, so a mismatch
is refused before anything loads. The adapter folder declares the layout it was trained on
(`warden_prompt.json`), which the serving backend and `warden eval` read.

Run: warden train post --base assets/model/demo --data datasets/d1 --out runs/r1 --method sft
     accelerate launch -m training.posttrain --base ... --data ... --out ...   (several GPUs)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from model import prompts
from model.reading import Reader
from storage.errors import WardenError
from training import grounding_sft
from training.dataset import card_layout, load_trl_split, read_card

log = logging.getLogger(__name__)

Method = Literal["sft", "dpo", "sft+dpo"]
# Linear layers of the language model only: the regex keeps LoRA off the vision tower and
# projector (frozen by default) whatever the architecture calls its top-level modules.
LM_TARGETS = (
    r".*(language_model|text_model|\.lm\.|\.llm\.).*"
    r"\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
)
VISION_TARGETS = (
    r".*(vision_tower|vision_model|visual|multi_modal_projector|connector).*"
    r"\.(qkv|q_proj|k_proj|v_proj|proj|fc1|fc2|linear_1|linear_2|out_proj|projection_layer)"
)


@dataclass(frozen=True)
class PostTrainConfig:
    method: Method = "sft"
    qlora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    train_vision: bool = False
    lr: float = 2e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    grad_accum: int = 1
    dpo_beta: float = 0.1
    dpo_epochs: float = 1.0
    save_steps: int = 100
    logging_steps: int = 10
    seed: int = 0
    # Extra replay rows (a SynthMod/general manifest) mixed into the SFT rows, on top of any
    # replay the dataset already holds; `replay_ratio` of the final SFT set.
    replay_manifest: str | None = None
    replay_ratio: float = 0.0
    bf16: bool | None = None  # None: bf16 on CUDA when supported, and on a CPU with hardware bf16
    # Keep every "Yes" row and at most this many "No" rows per image (None: all). Each row
    # re-reads the image, so on a CPU this is the main cost knob; the negatives kept are a
    # seeded random draw, different categories for different images.
    negatives_per_image: int | None = None
    # Replay rows (origin "replay:...") keep all their "No" rows even when negatives are
    # subsampled: they anchor the old decision boundary of every category, which the new
    # data's few negatives cannot (bench/loop.py measured the forgetting it prevents).
    replay_all_negatives: bool = False
    # Also train the embedding rows of the tokens that the new data's content brings: the
    # OCR-hint and caption tokens of the non-replay rows, less the prompt template's own
    # tokens, the special tokens and the answer words (PEFT `trainable_token_indices`). LoRA
    # cannot move an embedding, and text the base splits into pieces it has no meaning for
    # (leetspeak digits, new slang, code words) is learnt there. Rows of a tied LM head move
    # with them; the scorer reads only "Yes" against "No", which stay frozen.
    tune_content_tokens: bool = False
    # Evaluate every saved checkpoint on the dataset's validation split and keep the one with
    # the lowest benign flag rate among those within `choice_recall_tolerance` of the best
    # average recall (training.checkpoint_choice); `early_stop_patience` > 0 stops once the
    # benign flag rate has risen that many evaluations in a row without recall improving.
    choose_checkpoint: bool = True
    choice_recall_tolerance: float = 0.01
    # Prefer checkpoints that lose no category more than this recall on validation against
    # the model before training: the gate's per-category line (TrainSettings.promote_tolerance)
    # seen before the gate (training.checkpoint_choice). None: not used.
    choice_category_tolerance: float | None = 0.03
    early_stop_patience: int = 0
    # Per-category thresholds fitted on the chosen checkpoint's validation scores so that at
    # most this share of the harmless validation rows is flagged (model.calibration
    # .fit_thresholds: thresholds only rise above the policy's, recall given up as little as
    # possible), written beside the adapter as thresholds.json, which the scorer applies.
    # None: no thresholds (the policy's). Needs checkpoint choice and harmless validation rows.
    threshold_benign_rate: float | None = None
    # Grounding rows (the dataset's data/grounding-*.parquet: where a decided category is, in
    # the base's own box format) train in the SFT stage beside the Yes/No rows when the base
    # can see images (training.grounding_sft). Each of their answer tokens counts this many
    # times in the loss (1.0: every answer token alike, TRL's token mean; a box answer is
    # 20-40 tokens against the Yes/No rows' one); 0 leaves them out.
    grounding_weight: float = 1.0
    # Replay rows (origin "replay:...") also learn the base's answer distribution at their
    # answer token, KL(base || candidate) times this weight beside their cross-entropy
    # (training.answer_loss, "learning without forgetting"); the base is the live model unless
    # the live model is an adapter. Measured on three turns: no fewer original rows lost, more
    # false alarms on one (bench/HISTORY.md). 0: off (no extra forward).
    hold_weight: float = 0.0
    # Measure the validation grounding rows after training: answer-token loss (and before
    # training), and mean IoU of the greedy answers' parsed boxes (`grounding_generate`).
    grounding_generate: bool = True


@dataclass(frozen=True)
class PostTrainResult:
    out: str
    adapter: str
    base: str
    data_hash: str
    method: str
    metrics: dict[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)


def git_commit() -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def _answer(messages: list[dict[str, Any]]) -> str:
    content = messages[0]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def to_text_rows(rows: list[dict[str, Any]], processor: Any) -> list[dict[str, Any]]:
    """Conversational rows -> prompt text rendered by the model's template (as the scorer
    renders it: `add_generation_prompt=True`), completion/chosen/rejected as bare answers."""
    out = []
    for r in rows:
        text = processor.apply_chat_template(
            r["prompt"], add_generation_prompt=True, tokenize=False
        )
        row = {"images": r["images"], "prompt": text}
        for key in ("completion", "chosen", "rejected"):
            if key in r:
                row[key] = _answer(r[key])
        out.append(row)
    return out


def subsample_negatives(
    rows: list[dict[str, Any]], k: int, seed: int, *, keep_replay: bool = False
) -> list[dict[str, Any]]:
    """All rows answered "Yes", and up to `k` "No" rows per image (by its key or image id);
    with `keep_replay`, every row of a replay image (origin "replay:...") is kept."""
    import random

    rng = random.Random(seed)
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        by_image.setdefault(r.get("key") or id(r["images"][0]), []).append(r)
    out = []
    for group in by_image.values():
        if keep_replay and str(group[0].get("origin") or "").startswith("replay"):
            out += group
            continue
        yes = [r for r in group if _answer(r["completion"]) == "Yes"]
        no = [r for r in group if _answer(r["completion"]) != "Yes"]
        out += yes + rng.sample(no, min(k, len(no)))
    rng.shuffle(out)
    return out


def _replay_rows(
    manifest: str,
    n: int,
    policy: Any,
    seed: int,
    read: Callable[[str], str] | None = None,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
) -> list[dict[str, Any]]:
    """`n` SFT rows (image x category question) drawn from a replay manifest, in the
    dataset's prompt `layout`; the OCR hint passes through `read` (the dataset's reader), as
    the dataset's own rows did."""
    import random

    from PIL import Image

    from training.evaluate import read_manifest

    rows = [
        r
        for r in read_manifest(Path(manifest), policy)
        if not policy.restricted_ids & set(r.labels)
    ]
    rng = random.Random(seed)
    rng.shuffle(rows)
    out: list[dict[str, Any]] = []
    for r in rows:
        if len(out) >= n:
            break
        with Image.open(r.path) as im:
            image = im.convert("RGB")
        for cat in policy.categories:
            out.append(
                {
                    "images": [image],
                    "prompt": prompts.build_messages(
                        policy,
                        text=r.text,
                        ocr_text=read(r.ocr_text) if read and r.ocr_text else r.ocr_text or "",
                        question=prompts.category_question(cat, layout),
                        layout=layout,
                    ),
                    "completion": prompts.answer_messages(prompts.yes_no(cat.id in r.labels)),
                    "origin": "replay:manifest",
                }
            )
    return out[:n]


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _use_bf16(config: PostTrainConfig, device: str) -> bool:
    """The config's bf16, or by default: on CUDA when supported, on a CPU with hardware bf16
    (`model.loading.cpu_bf16_fast`; emulated bf16 is ~8x slower than float32 there)."""
    import torch

    from model import loading

    if config.bf16 is not None:
        return config.bf16
    return loading.cpu_bf16_fast() if device == "cpu" else torch.cuda.is_bf16_supported()


def content_token_ids(
    rows: list[dict[str, Any]],
    processor: Any,
    policy: Any,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
) -> list[int]:
    """Token ids in the prompts of the non-replay `rows` (conversational SFT rows) that the
    prompt template alone (in the rows' `layout`) never produces, less special tokens and the
    answer words."""
    from model import scoring

    tok = processor.tokenizer

    def ids(messages: list[dict[str, Any]]) -> set[int]:
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return set(tok(text, add_special_tokens=False)["input_ids"])

    template: set[int] = set()
    for cat in policy.categories:
        q = prompts.category_question(cat, layout)
        template |= ids(
            prompts.build_messages(policy, text=None, ocr_text="", question=q, layout=layout)
        )
    found: set[int] = set()
    for r in rows:
        if not str(r.get("origin") or "").startswith("replay"):
            found |= ids(r["prompt"])
    excluded = template | set(tok.all_special_ids) | set(scoring.answer_token_ids(tok))
    return sorted(found - excluded)


def load_for_training(
    base: str,
    config: PostTrainConfig,
    *,
    token_ids: list[int] | None = None,
    processor: Any = None,
) -> tuple[Any, Any]:
    """(PEFT model, processor). QLoRA: NF4 base with the vision side and LM head unquantized.
    `token_ids`: embedding rows that train too (`tune_content_tokens`); `processor`: the
    base's, when the caller has loaded it already."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from model import loading

    path = loading.resolve_model_path(base)
    processor = processor or AutoProcessor.from_pretrained(path)
    device = _device()
    bf16 = _use_bf16(config, device)
    dtype = torch.bfloat16 if (bf16 and device == "cuda") else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if config.qlora:
        compute = torch.bfloat16 if bf16 else torch.float32
        skip = loading.unquantized_modules(AutoConfig.from_pretrained(path))
        kwargs["quantization_config"] = loading.quantization_config("4bit", compute, skip)
        if device == "cuda":
            # One full copy per process under `accelerate launch` (data parallel).
            from accelerate import PartialState

            kwargs["device_map"] = {"": PartialState().local_process_index}
        else:
            kwargs["device_map"] = "cpu"
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    if config.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        if device == "cpu":
            loading._fix_cpu_4bit(model)
    target = LM_TARGETS if not config.train_vision else f"({LM_TARGETS})|({VISION_TARGETS})"
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target,
        task_type="CAUSAL_LM",
        trainable_token_indices=token_ids or None,
    )
    model = get_peft_model(model, lora)
    return model, processor


def _last_checkpoint(dir_: Path) -> str | None:
    if not dir_.is_dir():
        return None
    cps = sorted(
        (p for p in dir_.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(cps[-1]) if cps else None


def _loss_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    losses = [h["loss"] for h in history if "loss" in h]
    out: dict[str, Any] = {"losses": [round(x, 4) for x in losses]}
    if losses:
        out["first_loss"] = losses[0]
        out["last_loss"] = losses[-1]
    for h in history:
        if "train_runtime" in h:
            out["runtime_s"] = round(h["train_runtime"], 1)
            out["train_loss"] = h.get("train_loss")
    return out


def _common_args(config: PostTrainConfig, out: Path, bf16: bool, epochs: float) -> dict[str, Any]:
    import torch

    return dict(
        output_dir=str(out),
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        num_train_epochs=epochs,
        max_steps=config.max_steps,
        lr_scheduler_type="cosine",
        warmup_steps=min(10, max(config.max_steps, 10) // 10),
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=2,
        seed=config.seed,
        bf16=bf16,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        max_length=None,  # never truncate image tokens
        # Off: the tiny and LoRA-on-2B runs fit without it, and it costs a second forward.
        # transformers 5.x renamed the flag; pass the name this version knows.
        **{_checkpointing_flag(): False},
    )


def _checkpointing_flag() -> str:
    from dataclasses import fields

    from transformers import TrainingArguments

    new = "activation_checkpointing"
    return new if new in {f.name for f in fields(TrainingArguments)} else "gradient_checkpointing"


def _validation_choice(
    layout: prompts.PromptLayout,
    data: Path,
    config: PostTrainConfig,
    processor: Any,
    policy: Any,
    reader: Any,
) -> Any:
    """The checkpoint-choice callback over the dataset's validation items, scored in the
    prompt `layout` the run trains (None: off, or no validation items, or none harmless)."""
    if not config.choose_checkpoint:
        return None
    from training.checkpoint_choice import ValidationChoice
    from training.dataset import load_items

    rows = [
        r for r in load_items(data, "validation") if not policy.restricted_ids & set(r["labels"])
    ]
    if not rows or all(r["labels"] for r in rows):
        log.info("no harmless validation items: the last checkpoint is kept")
        return None
    return ValidationChoice(
        rows=rows,
        processor=processor,
        policy=policy,
        read=reader.read if reader is not None else None,
        layout=layout,
        recall_tolerance=config.choice_recall_tolerance,
        patience=config.early_stop_patience,
        category_tolerance=config.choice_category_tolerance,
    )


def check_layouts(base: str, data: Path) -> prompts.PromptLayout:
    """The prompt layout a run over `base` on the dataset `data` trains: the one both declare.
    A WardenError saying how to line them up when the dataset's differs from the base's."""
    from model import loading

    ds_layout = card_layout(read_card(data))
    base_layout = prompts.model_layout(loading.resolve_model_path(base))
    if ds_layout != base_layout:
        raise WardenError(
            f"{data} holds prompts in the {ds_layout!r} layout but the base model {base} "
            f"declares {base_layout!r} ({prompts.LAYOUT_FILE}; none means "
            f"{prompts.DEFAULT_LAYOUT!r}): the model would be served with prompts it was not "
            f"trained on. Rebuild the dataset with `warden dataset build --layout {base}` "
            f"(or --layout {base_layout})."
        )
    return ds_layout


def post_train(
    base: str,
    data: Path,
    out: Path,
    config: PostTrainConfig | None = None,
    *,
    resume: bool = False,
    policy: Any = None,
) -> PostTrainResult:
    """Train a LoRA adapter on `data` (a `warden dataset build` directory) over `base`."""
    import datasets
    import torch
    from trl import DPOConfig, DPOTrainer, SFTConfig

    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY
    from training.answer_loss import AnswerLossSFTTrainer

    config = config or PostTrainConfig()
    data, out = Path(data), Path(out)
    card = read_card(data)
    layout = check_layouts(base, data)
    # The dataset's reader (model.reading) is part of the candidate: its prompts were read
    # through it, so serving reads through it too.
    reader = Reader.load(data)
    policy = policy or load_policy(DEFAULT_POLICY)
    if (out / "manifest.json").exists() and not resume:
        raise WardenError(f"{out} already holds a finished run; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    torch.set_flush_denormal(True)
    started = time.perf_counter()
    methods = config.method.split("+")
    # The SFT rows are read once: for the content tokens (if asked) and for the SFT stage.
    sft_rows = (
        load_trl_split(data, "sft", "train")
        if "sft" in methods or config.tune_content_tokens
        else []
    )
    token_ids = processor = None
    if config.tune_content_tokens:
        from transformers import AutoProcessor

        from model import loading

        processor = AutoProcessor.from_pretrained(loading.resolve_model_path(base))
        token_ids = content_token_ids(sft_rows, processor, policy, layout)
        log.info("training %d content-token embedding rows", len(token_ids))
    model, processor = load_for_training(base, config, token_ids=token_ids, processor=processor)
    device = _device()
    bf16 = _use_bf16(config, device)
    trainable, total = model.get_nb_trainable_parameters()
    log.info("LoRA: %d trainable of %d parameters", trainable, total)
    metrics: dict[str, Any] = {"trainable_params": trainable, "total_params": total}
    thresholds = None  # model.calibration.Calibration fitted on validation, if asked
    if token_ids is not None:
        metrics["content_tokens"] = len(token_ids)
    # Grounding rows join the SFT rows, or the run records why not (training.grounding_sft).
    grounding_rows, metrics["grounding"] = grounding_sft.training_rows(
        base, data, config.grounding_weight, has_sft="sft" in methods
    )
    grounding_fmt = metrics["grounding"]["format"]
    grounding_val = grounding_sft.validation_rows(data) if grounding_rows else []

    if "sft" in methods:
        rows = sft_rows
        if config.replay_manifest and config.replay_ratio > 0:
            from training.curation import replay_count

            extra = _replay_rows(
                config.replay_manifest,
                replay_count(len(rows), config.replay_ratio),
                policy,
                config.seed,
                read=reader.read if reader is not None else None,
                layout=layout,
            )
            metrics["replay_rows_added"] = len(extra)
            rows += extra
        if config.negatives_per_image is not None:
            rows = subsample_negatives(
                rows,
                config.negatives_per_image,
                config.seed,
                keep_replay=config.replay_all_negatives,
            )
        if not rows:
            raise WardenError(f"{data} has no SFT rows to train on")
        text_rows = to_text_rows(rows, processor)
        if config.hold_weight > 0:
            held = [str(r.get("origin") or "").startswith("replay") for r in rows]
            text_rows = [t | {"hold": float(h)} for t, h in zip(text_rows, held, strict=True)]
            metrics["held_rows"] = sum(held)
        if grounding_rows:
            # One weight column for every row (Yes/No rows count 1): datasets needs it on all.
            text_rows = [r | {"answer_weight": 1.0} for r in text_rows]
            g_rows = grounding_sft.text_rows(grounding_rows, processor, config.grounding_weight)
            text_rows += [r | {"hold": 0.0} for r in g_rows] if config.hold_weight > 0 else g_rows
            if grounding_val:
                metrics["grounding"]["validation_before"] = grounding_sft.evaluate(
                    model, processor, grounding_val, policy, grounding_fmt, generate=False
                )
        train = datasets.Dataset.from_list(text_rows)
        args = SFTConfig(
            **_common_args(config, out / "checkpoints-sft", bf16, config.epochs),
            completion_only_loss=True,
        )
        choice = _validation_choice(layout, data, config, processor, policy, reader)
        trainer = AnswerLossSFTTrainer(
            model=model,
            args=args,
            train_dataset=train,
            processing_class=processor,
            callbacks=[choice] if choice is not None else None,
            hold_weight=config.hold_weight,
        )
        ckpt = _last_checkpoint(out / "checkpoints-sft") if resume else None
        trainer.train(resume_from_checkpoint=ckpt)
        metrics["sft"] = {
            "rows": len(rows),
            "grounding_rows": len(grounding_rows),
            "global_step": trainer.state.global_step,
            "resumed_from": ckpt,
            **_loss_summary(trainer.state.log_history),
        }
        model = trainer.model
        if choice is not None:
            if config.threshold_benign_rate is not None:
                thresholds = choice.fit_thresholds(config.threshold_benign_rate)
            metrics["checkpoint_choice"] = choice.restore(model)

    if "dpo" in methods:
        pairs = load_trl_split(data, "preference", "train")
        if not pairs:
            if config.method == "dpo":
                raise WardenError(f"{data} has no preference pairs (no corrections of the model)")
            log.warning("no preference pairs in %s; skipping DPO", data)
        else:
            train = datasets.Dataset.from_list(to_text_rows(pairs, processor))
            args = DPOConfig(
                **_common_args(config, out / "checkpoints-dpo", bf16, config.dpo_epochs),
                beta=config.dpo_beta,
            )
            # With a PEFT model, the reference is the base with the adapter disabled.
            trainer = DPOTrainer(
                model=model, args=args, train_dataset=train, processing_class=processor
            )
            ckpt = _last_checkpoint(out / "checkpoints-dpo") if resume else None
            trainer.train(resume_from_checkpoint=ckpt)
            metrics["dpo"] = {
                "pairs": len(pairs),
                "global_step": trainer.state.global_step,
                "resumed_from": ckpt,
                **_loss_summary(trainer.state.log_history),
            }
            model = trainer.model

    if grounding_val:
        metrics["grounding"]["validation"] = grounding_sft.evaluate(
            model,
            processor,
            grounding_val,
            policy,
            grounding_fmt,
            generate=config.grounding_generate,
        )
    adapter = out / "adapter"
    model.save_pretrained(adapter)
    processor.save_pretrained(adapter)
    # The candidate declares the layout it was trained on: serving and evaluation read it.
    prompts.write_model_layout(adapter, layout)
    if thresholds is not None:
        thresholds.save(adapter)
        metrics["thresholds"] = {c: cal.threshold for c, cal in thresholds.categories.items()} | {
            "info": thresholds.info
        }
    if reader is not None:
        reader.save(adapter)
        metrics["reading"] = {
            "swaps": sum(len(obs) for obs in reader.channel.subs.values()),
            "lexicon_words": len(reader.lexicon),
        }
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    manifest = {
        "base": base,
        "data": str(data.resolve()),
        "data_hash": card["data_hash"],
        "dataset": card.get("name"),
        "layout": layout,
        "config": asdict(config),
        "metrics": metrics,
        "git_commit": git_commit(),
        "device": device,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return PostTrainResult(
        out=str(out.resolve()),
        adapter=str(adapter.resolve()),
        base=base,
        data_hash=card["data_hash"],
        method=config.method,
        metrics=metrics,
        manifest=manifest,
    )


def register_run(
    session: Any,
    result: PostTrainResult,
    *,
    name: str,
    actor: str,
) -> Any:
    """Record the run in `training_runs` and the adapter as a candidate in `model_versions`."""
    from sqlalchemy import select

    from model import loading
    from storage.models import Dataset, TrainingRun
    from training.registry import register_model

    ds = session.scalars(select(Dataset).where(Dataset.data_hash == result.data_hash)).first()
    session.add(
        TrainingRun(
            dataset_id=ds.id if ds else None,
            base_model=result.base,
            output_uri=result.out,
            method=result.method,
            status="finished",
            config=result.manifest.get("config", {}),
            metrics=result.metrics,
            finished_at=datetime.now(UTC),
        )
    )
    return register_model(
        session,
        name,
        loading.resolve_model_path(result.base),
        actor=actor,
        base_model=result.base,
        adapter_uri=result.adapter,
        manifest=result.manifest,
    )


def main() -> None:
    """Entry point for `accelerate launch -m training.posttrain ...` (same flags as the CLI)."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--method", default="sft", choices=["sft", "dpo", "sft+dpo"])
    p.add_argument("--qlora", action="store_true")
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--resume", action="store_true")
    a = p.parse_args()
    cfg = PostTrainConfig(
        method=a.method,
        qlora=a.qlora,
        max_steps=a.max_steps,
        epochs=a.epochs,
        lr=a.lr,
        batch_size=a.batch_size,
    )
    res = post_train(a.base, a.data, a.out, cfg, resume=a.resume)
    print(json.dumps(res.metrics, indent=2, default=str))


if __name__ == "__main__":
    main()
