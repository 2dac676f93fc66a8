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
    """TRL's collator, plus the rows' `answer_weight` as a [B] float tensor when they have one
    (taken out of the rows before TRL's collator sees them)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        weights = [e.pop("answer_weight", None) for e in examples]
        batch = self.inner(examples)
        if any(w is not None for w in weights):
            batch["answer_weight"] = torch.tensor(
                [1.0 if w is None else float(w) for w in weights], dtype=torch.float32
            )
        return batch


class AnswerLossSFTTrainer(SFTTrainer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.data_collator = WeightedCollator(self.data_collator)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        labels = inputs["labels"]
        keep = answer_positions(labels)
        weight = inputs.get("answer_weight")
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "answer_weight")}
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
