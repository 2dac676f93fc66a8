"""TRL's SFTTrainer with a loss that projects only the answer positions through the LM head.

Warden's SFT rows are one category question each, answered by one token ("Yes"/"No"): of the
~250-1000 positions of a row, one carries a label. TRL's fused LM head skips unlabelled
positions on CUDA and XPU, but elsewhere (CPU) it projects every position onto the vocabulary,
[B, L, V] work for [B, 1] answers; with the demo's 24,576-token vocabulary that was most of a
training step. This trainer passes the model a boolean `logits_to_keep` mask
([B, L], True where the next token is a label), so the LM head sees [N_answers, D] on any
device, and computes the same token-mean cross-entropy TRL does (`num_items_in_batch` when
accumulating, the same scaling across processes). Metrics: `mean_token_accuracy`.

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


class AnswerLossSFTTrainer(SFTTrainer):
    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        labels = inputs["labels"]
        keep = answer_positions(labels)
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        outputs = model(**model_inputs, use_cache=False, logits_to_keep=keep)
        logits = outputs.logits.float()  # [N, V]: the kept positions, row-major
        target = labels[:, 1:][labels[:, 1:] != -100]  # [N], same order
        total = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
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
