"""Choose the post-training checkpoint on the validation split: fewest false alarms, recall kept.

Training loss keeps falling long after a LoRA run has started to buy recall with false alarms
(issue 18: a turn that lifted a new evasion's recall flagged 40% of harmless phrases nobody
corrected). At every checkpoint save, `ValidationChoice` scores the dataset's validation items
through the scorer (`model.scoring.score_shared_prefix`, the serving path, OCR hints read
through the dataset's reader) and records the benign flag rate (harmless rows flagged) and the
average recall. At the end the adapter weights of the chosen evaluation are put back:

- among evaluations that lose no category more than `category_tolerance` of recall against
  the model before training (the baseline evaluation at step 0; the gate's own per-category
  line, measured on validation; categories with fewer than `min_positives` validation
  positives are not judged), or, when none does, among those that lose least of their worst
  category (a swap turn on the distilled demo lost scam at every save, 6.5 to 18 points, and
  the rule over all of them kept a checkpoint that lost 9.7 for one harmless row fewer),
- among those whose average recall is within `recall_tolerance` of the best seen,
- the lowest benign flag rate (ties: the later step).

The first filter is there because a turn forgets a category it was never corrected on while it
learns the evasion (issue 18: self-harm lost 4 of 26 retention rows at the last step), and the
gate then refuses the whole turn; an earlier checkpoint that kept the category may pass.

With `patience` > 0 training stops early once the benign flag rate has risen for that many
evaluations in a row without recall improving. Everything is recorded in the run's metrics
(`checkpoint_choice`).

Run: warden train post ... (PostTrainConfig.choose_checkpoint, on by default when the dataset
has validation items)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)


# A fitted threshold counts a validation positive scored less than this (logit units) above it
# as lost: e (2.7x) in the odds of Yes, room for rows validation has not seen.
THRESHOLD_MARGIN = 1.0


@dataclass
class Evaluation:
    step: int
    benign_flag_rate: float | None
    average_recall: float | None
    # Recall per category with at least `min_positives` validation positives.
    per_category: dict[str, float] = field(default_factory=dict)
    # Largest recall loss of any category against the baseline (None: no baseline).
    worst_category_drop: float | None = None


@dataclass
class ValidationChoice(TrainerCallback):
    """A TrainerCallback: evaluate at each save, keep the best trainable weights in memory."""

    rows: Sequence[dict[str, Any]]  # the dataset's validation items (load_items)
    processor: Any
    policy: Any
    read: Callable[[str], str] | None = None
    layout: str = "question"  # the base model's prompt layout (model.prompts.model_layout)
    recall_tolerance: float = 0.01
    patience: int = 0
    # The gate's per-category tolerance (TrainSettings.promote_tolerance); None: not used.
    category_tolerance: float | None = 0.03
    min_positives: int = 5
    baseline: Evaluation | None = None
    evaluations: list[Evaluation] = field(default_factory=list)
    # Raw scores of the validation rows at every evaluation, by step (for `fit_thresholds`).
    _scores: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    # Trainable weights at every evaluation (LoRA and tuned rows: small), by step.
    _weights: dict[int, dict[str, Any]] = field(default_factory=dict)

    def evaluate(self, model: Any) -> Evaluation:
        import torch

        from model import scoring
        from training.dataset import row_input
        from training.evaluate import average_recall, benign_flag_rate, category_metrics

        # Each row as the scorer sees it: a post's or video's every medium, labelled.
        items = [row_input(r, self.read) for r in self.rows]
        was_training = model.training
        model.eval()
        yes_no = scoring.answer_token_ids(self.processor.tokenizer)
        scores: list[dict[str, float]] = []
        with torch.no_grad():
            for start in range(0, len(items), 8):
                scores += scoring.score_shared_prefix(
                    model,
                    self.processor,
                    items[start : start + 8],
                    self.policy,
                    yes_no=yes_no,
                    layout=self.layout,  # type: ignore[arg-type]
                )
        if was_training:
            model.train()
        truth = [list(r["labels"]) for r in self.rows]
        predicted = [self.policy.flagged(s) for s in scores]
        metrics = category_metrics(truth, predicted, self.policy.ids)
        recall = average_recall(metrics)
        self._last_scores = scores
        per_category = {
            c: m.recall
            for c, m in metrics.items()
            if m.recall is not None and m.support >= self.min_positives
        }
        ev = Evaluation(0, benign_flag_rate(truth, predicted), recall, per_category)
        if self.baseline is not None:
            drops = [
                self.baseline.per_category[c] - r
                for c, r in per_category.items()
                if c in self.baseline.per_category
            ]
            ev.worst_category_drop = max(drops, default=0.0)
        return ev

    def _keeps_categories(self, e: Evaluation) -> bool:
        return (
            self.category_tolerance is None
            or e.worst_category_drop is None
            or e.worst_category_drop <= self.category_tolerance + 1e-9
        )

    def _least_forgetting(self) -> list[Evaluation]:
        """The evaluations that lost least of their worst category (ties within 1e-9): the
        pool when none keeps every category within the tolerance, because the gate judges
        the worst category and a smaller loss is the one it may still pass."""
        drops = [e.worst_category_drop for e in self.evaluations]
        if any(d is None for d in drops):
            return list(self.evaluations)
        least = min(drops, default=0.0)
        return [e for e in self.evaluations if e.worst_category_drop <= least + 1e-9]

    def _chosen(self) -> Evaluation | None:
        pool = [
            e for e in self.evaluations if self._keeps_categories(e)
        ] or self._least_forgetting()
        recalls = [e.average_recall for e in pool if e.average_recall is not None]
        floor = (max(recalls) - self.recall_tolerance) if recalls else None
        ok = [
            e
            for e in pool
            if floor is None or (e.average_recall is not None and e.average_recall >= floor)
        ]
        if not ok:
            return None
        return min(ok, key=lambda e: (e.benign_flag_rate or 0.0, -e.step))

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, **_: Any
    ) -> Any:
        """The baseline: the model before any step (a fresh LoRA adds nothing), which is the
        live model the gate will compare against."""
        if model is None or not self.rows or self.category_tolerance is None:
            return control
        if self.baseline is None:  # a resumed run keeps the first baseline
            self.baseline = self.evaluate(model)
            self.baseline.step = state.global_step
            log.info("validation before training: %s", self.baseline)
        return control

    def on_save(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> Any:
        if model is None or not self.rows:
            return control
        ev = self.evaluate(model)
        ev.step = state.global_step
        self.evaluations.append(ev)
        self._scores[ev.step] = self._last_scores
        log.info(
            "validation at step %d: benign flag rate %s, average recall %s",
            ev.step,
            ev.benign_flag_rate,
            ev.average_recall,
        )
        self._weights[ev.step] = {
            k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad
        }
        if self.patience and len(self.evaluations) > self.patience:
            last = self.evaluations[-(self.patience + 1) :]
            rising = all(
                (b.benign_flag_rate or 0) > (a.benign_flag_rate or 0)
                for a, b in zip(last, last[1:], strict=False)
            )
            no_gain = all(
                (b.average_recall or 0) <= (last[0].average_recall or 0) for b in last[1:]
            )
            if rising and no_gain:
                log.info("benign flag rate rose %d evaluations in a row: stopping", self.patience)
                control.should_training_stop = True
        return control

    def recall_budget(self, chosen: Evaluation) -> dict[str, float] | None:
        """Recall each category's threshold may still spend on validation: half the gate's
        per-category tolerance, less what `chosen` already lost there against the baseline.

        Half, because validation prices a threshold with sampling error: a category has ~70
        validation rows, where 3 points is 2 rows, and what a raise costs there need not be
        what it costs on golden (`THRESHOLD_MARGIN` covers raises that look free).
        None (the calibration's own default) without a category tolerance or a baseline."""
        if self.category_tolerance is None or self.baseline is None:
            return None
        half = self.category_tolerance / 2
        out: dict[str, float] = {}
        for c in self.policy.categories:
            base = self.baseline.per_category.get(c.id)
            now = chosen.per_category.get(c.id)
            lost = max(0.0, base - now) if base is not None and now is not None else 0.0
            out[c.id] = max(0.0, half - lost)
        return out

    def fit_thresholds(self, target_benign_rate: float) -> Any:
        """Per-category thresholds (`model.calibration.fit_thresholds`) on the chosen
        checkpoint's validation scores, for at most `target_benign_rate` of the harmless
        validation rows flagged, spending no more recall than `recall_budget` leaves; None
        without a chosen evaluation or with too few rows."""
        from model.calibration import fit_thresholds

        chosen = self._chosen()
        if chosen is None or chosen.step not in self._scores:
            return None
        budget = self.recall_budget(chosen)
        try:
            return fit_thresholds(
                self._scores[chosen.step],
                [list(r["labels"]) for r in self.rows],
                {c.id: c.threshold for c in self.policy.categories},
                target_benign_rate=target_benign_rate,
                margin=THRESHOLD_MARGIN,
                **({"max_recall_loss": budget} if budget is not None else {}),
            )
        except ValueError as exc:  # too few rows, or none harmless
            log.info("no thresholds fitted on validation: %s", exc)
            return None

    def restore(self, model: Any) -> dict[str, Any]:
        """Put the chosen evaluation's weights back into `model`; returns the record."""
        import torch

        chosen = self._chosen()
        record: dict[str, Any] = {
            "evaluations": [vars(e) for e in self.evaluations],
            "recall_tolerance": self.recall_tolerance,
            "category_tolerance": self.category_tolerance,
            "baseline": vars(self.baseline) if self.baseline is not None else None,
            "kept_categories": [e.step for e in self.evaluations if self._keeps_categories(e)],
            "chosen_step": chosen.step if chosen is not None else None,
        }
        if chosen is not None:
            with torch.no_grad():
                params = dict(model.named_parameters())
                for k, v in self._weights[chosen.step].items():
                    params[k].copy_(v)
        self._weights.clear()
        return record
