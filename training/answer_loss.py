"""TRL's SFTTrainer with a loss that projects only the answer positions through the LM head.

Warden's SFT rows are one category question each, answered by one token ("Yes"/"No"): of the
~250-1000 positions of a row, one carries a label. TRL's fused LM head skips unlabelled
positions on CUDA and XPU, but elsewhere (CPU) it projects every position onto the vocabulary,
[B, L, V] work for [B, 1] answers; with the demo's 24,576-token vocabulary that was most of a
training step. This trainer passes the model a boolean `logits_to_keep` mask
([B, L], True where the next token is a label), so the LM head sees [N_answers, D] on any
device, and computes the same token-mean cross-entropy TRL does (`num_items_in_batch` when
accumulating, the same scaling across processes). Metrics: `mean_token_accuracy`.

Grounding rows (training.grounding_sft) answer with many tokens (the whole box answer and the
end-of-turn token) and carry an `answer_weight`: every one of their answer tokens counts that
many times in the sum (the divisor stays the token count, as TRL's). Rows without a weight
count 1, so a Yes/No-only run computes exactly TRL's loss.

Rows that carry `hold` > 0 (replay rows, when `PostTrainConfig.hold_weight` is set) also learn
the reference model's own answer distribution at their answer position: the KL divergence from
the model before training (the base with the LoRA adapter disabled) to the one being trained,
times `hold_weight`, over the same token count ("learning without forgetting", Li and Hoiem
2016). The reference is the base the adapter trains on: the live model when the live model is a
base, not a live adapter's answers (post-training always starts a fresh adapter on the base). A
hard "Yes" on a replay row says what the item is; the reference's distribution also says how
sure it was of every category it answers. It costs one forward pass without gradients per
batch. Measured on three turns it held no more than hard labels did (bench/HISTORY.md): the
demo recipe leaves it off.

Imported by `training.posttrain` only (it imports TRL).
"""

from __future__ import annotations

from typing import Any

import torch
from trl import SFTTrainer


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """[B, L] bool: True at position t when token t+1 is a label (not -100)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != -100
    return keep


class WeightedCollator:
    """TRL's collator, plus the rows' `answer_weight` (default 1) and `hold` (default 0) as [B]
    float tensors when any row has them (taken out of the rows before TRL's collator sees
    them)."""

    COLUMNS = (("answer_weight", 1.0), ("hold", 0.0))

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        columns = {name: [e.pop(name, None) for e in examples] for name, _ in self.COLUMNS}
        batch = self.inner(examples)
        for name, default in self.COLUMNS:
            values = columns[name]
            if any(v is not None for v in values):
                batch[name] = torch.tensor(
                    [default if v is None else float(v) for v in values], dtype=torch.float32
                )
        return batch


def hold_divergence(
    logits: torch.Tensor, reference: torch.Tensor, rows: torch.Tensor, hold: torch.Tensor
) -> torch.Tensor:
    """Sum over the answer positions of rows with `hold` > 0 of hold x KL(reference || logits),
    each [N, V] (row-major answer positions; `rows` [N] their batch rows)."""
    weight = hold.to(logits.device, logits.dtype)[rows]
    held = weight > 0
    if not bool(held.any()):
        return logits.new_zeros(())
    log_p = torch.log_softmax(logits[held], dim=-1)
    log_q = torch.log_softmax(reference[held].to(logits.dtype), dim=-1)
    kl = (log_q.exp() * (log_q - log_p)).sum(-1)
    return (kl * weight[held]).sum()


class AnswerLossSFTTrainer(SFTTrainer):
    def __init__(self, *args: Any, hold_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_collator = WeightedCollator(self.data_collator)
        self.hold_weight = hold_weight

    def _reference_logits(self, model: Any, inputs: dict[str, Any], keep: torch.Tensor) -> Any:
        """The reference logits at the kept positions: the base with the adapter disabled."""
        peft_model = self.accelerator.unwrap_model(model)
        with torch.no_grad(), peft_model.disable_adapter():
            return peft_model(**inputs, use_cache=False, logits_to_keep=keep).logits.float()

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        labels = inputs["labels"]
        keep = answer_positions(labels)
        weight, hold = inputs.get("answer_weight"), inputs.get("hold")
        model_inputs = {
            k: v for k, v in inputs.items() if k not in ("labels", "answer_weight", "hold")
        }
        outputs = model(**model_inputs, use_cache=False, logits_to_keep=keep)
        logits = outputs.logits.float()  # [N, V]: the kept positions, row-major
        labelled = labels[:, 1:] != -100
        target = labels[:, 1:][labelled]  # [N], same order
        if weight is None:
            total = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        else:
            per_token = torch.nn.functional.cross_entropy(logits, target, reduction="none")
            w = weight.to(per_token.device, per_token.dtype)[:, None].expand_as(labelled)
            total = (per_token * w[labelled]).sum()
        if self.hold_weight > 0 and hold is not None and bool((hold > 0).any()) and model.training:
            reference = self._reference_logits(model, model_inputs, keep)
            rows = labelled.nonzero()[:, 0]  # the batch row of each answer position
            total = total + self.hold_weight * hold_divergence(logits, reference, rows, hold)
        n = target.numel() if num_items_in_batch is None else num_items_in_batch
        loss = total / torch.as_tensor(n, device=total.device).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # DDP averages; the count spans ranks
        mode = "train" if model.training else "eval"
        correct = (logits.argmax(-1) == target).sum()
        valid = torch.as_tensor(target.numel(), device=target.device)
        valid = self.accelerator.gather_for_metrics(valid).sum()
        correct = self.accelerator.gather_for_metrics(correct).sum()
        self._metrics[mode]["mean_token_accuracy"].append(
            (correct / valid).item() if valid > 0 else 0.0
        )
        return (loss, outputs) if return_outputs else loss
