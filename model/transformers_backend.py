"""The `transformers` backend: a local Hugging Face image-text-to-text model scores items.

Any model `AutoModelForImageTextToText` loads works (hub id or local directory; default base
`OpenGVLab/InternVL3_5-2B-HF`). Scores are read from the next-token distribution with a shared
image prefix (`model.scoring`); a rationale, when asked for, is generated and parsed strictly
(`model.rationale`). Optional per-category calibration (`model.calibration`) maps raw scores
before thresholds; the raw scores are kept in `Verdict.signals["raw_scores"]`.

Run: warden model info tests-tiny-dir   (or through `warden score`)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from model import grounding, loading, prompts, scoring
from model.calibration import load_thresholds
from model.describe import generate_descriptions, sees_images
from model.rationale import parse_rationale
from model.reading import Reader
from storage.domain import Verdict
from storage.settings import ModelSettings

if TYPE_CHECKING:
    from PIL.Image import Image

    from model.backends import ScoringInput
    from model.calibration import Calibration
    from storage.policy import Policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendInfo:
    """What was loaded, and how: shown by `warden model info` and logged at load."""

    model_version: str
    path: str
    device: str
    dtype: str
    quant: str
    adapter: str | None
    architecture: str
    parameters: int
    weight_bytes: int
    load_s: float
    unquantized_modules: tuple[str, ...] = ()
    prompt_layout: str = prompts.DEFAULT_LAYOUT


def _weight_bytes(model: Any) -> int:
    # Packed 4-bit weights are uint8 tensors of half the element count: numel * element_size
    # is their true size. Quantization constants live in buffers / quant_state (small).
    n = sum(p.numel() * p.element_size() for p in model.parameters())
    return n + sum(b.numel() * b.element_size() for b in model.buffers())


def _device_label(model: Any, plan: loading.LoadPlan) -> str:
    device_map = getattr(model, "hf_device_map", None)
    if plan.device == "auto" and device_map:
        return "auto:" + ",".join(sorted({str(d) for d in device_map.values()}))
    return str(model.device)


class TransformersBackend:
    """Backend over one loaded model. Thread-safe: calls on one instance run one at a time."""

    def __init__(
        self,
        model_path: str,
        quant: str = "auto",
        dtype: str = "auto",
        device: str = "auto",
        adapter: str | None = None,
        *,
        version_name: str | None = None,
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        max_images_per_forward: int = 4,
    ) -> None:
        plan = loading.plan_load(
            ModelSettings(name=model_path, quant=quant, dtype=dtype, device=device, adapter=adapter)  # type: ignore[arg-type]
        )
        self._setup(plan, version_name, batch_size, max_new_tokens, max_images_per_forward)

    @classmethod
    def from_plan(
        cls,
        plan: loading.LoadPlan,
        *,
        version_name: str | None = None,
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        max_images_per_forward: int = 4,
    ) -> TransformersBackend:
        self = cls.__new__(cls)
        self._setup(plan, version_name, batch_size, max_new_tokens, max_images_per_forward)
        return self

    def _setup(
        self,
        plan: loading.LoadPlan,
        version_name: str | None,
        batch_size: int,
        max_new_tokens: int | None,
        max_images_per_forward: int,
    ) -> None:
        started = time.perf_counter()
        self.plan = plan
        self.model, self.processor = loading.load_model(plan)
        # A post-trained candidate's reader (model.reading) sits beside its adapter.
        self.reader = Reader.load(plan.adapter) or Reader.load(plan.path)
        self.yes_no = scoring.answer_token_ids(self.processor.tokenizer)
        # The prompt layout the model was trained on (its adapter says, else its directory):
        # scoring with the other one would ask questions the model never saw.
        self.layout = prompts.served_layout(plan.path, plan.adapter)
        # The demo checkpoint (and anything refined from it) reads OCR text, not pixels: it
        # never writes a description (model.describe).
        self.sees_images = sees_images(plan.path)
        # KV cache of the prompts' static start (system turn, policy), computed once per policy
        # and reused for every batch while this model is loaded (model.scoring.StaticPrefix).
        self._static: dict[str, scoring.StaticPrefix] = {}
        self.batch_size = max(1, batch_size)
        # None: derived per verdict (model.grounding.verdict_max_new_tokens).
        self.max_new_tokens = max_new_tokens
        # B images x N categories rows share one suffix forward; the repeated KV cache is
        # B * N * prefix_len per layer, so the image batch is capped separately.
        self.max_images_per_forward = max(1, min(max_images_per_forward, self.batch_size))
        # Per-category thresholds calibrated on validation (model.calibration.fit_thresholds)
        # sit beside the adapter or the weights; a registry calibration replaces them.
        self.thresholds = load_thresholds(plan.adapter, plan.path)
        self.calibration: Calibration | None = self.thresholds
        self._lock = threading.Lock()
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        skip = loading.unquantized_modules(base.config) if plan.quant != "none" else []
        self.info = BackendInfo(
            model_version=loading.model_version_id(plan.path, plan.adapter, name=version_name),
            path=plan.path,
            device=_device_label(self.model, plan),
            dtype=str(self.model.dtype).removeprefix("torch."),
            quant=plan.quant,
            adapter=plan.adapter,
            architecture=type(base).__name__,
            parameters=sum(p.numel() for p in self.model.parameters()),
            weight_bytes=_weight_bytes(self.model),
            load_s=time.perf_counter() - started,
            unquantized_modules=tuple(skip),
            prompt_layout=self.layout,
        )
        log.info(
            "loaded %s (%s) on %s, dtype %s, quant %s%s, %.1f MB weights, in %.1f s",
            self.info.model_version,
            self.info.architecture,
            self.info.device,
            self.info.dtype,
            self.info.quant,
            f" (kept unquantized: {', '.join(skip)})" if skip else "",
            self.info.weight_bytes / 1e6,
            self.info.load_s,
        )

    @property
    def model_version(self) -> str:
        return self.info.model_version

    def set_calibration(self, calibration: Calibration | None) -> None:
        """Apply `calibration` to raw scores from now on (None: the model's own calibrated
        thresholds, or raw scores when it has none)."""
        self.calibration = calibration if calibration is not None else self.thresholds

    def read(self, item: ScoringInput) -> ScoringInput:
        """`item` with its OCR hint as this model reads it (unchanged without a reader)."""
        if self.reader is None:
            return item
        reader = self.reader
        media = tuple(
            replace(m, ocr_text=reader.read(m.ocr_text)) if m.ocr_text else m for m in item.media
        )
        ocr_text = reader.read(item.ocr_text) if item.ocr_text else item.ocr_text
        return replace(item, ocr_text=ocr_text, media=media)

    def raw_scores(self, items: Sequence[ScoringInput], policy: Policy) -> list[dict[str, float]]:
        """Uncalibrated P(Yes) per category for each item, in order."""
        return self._raw_scores([self.read(i) for i in items], policy)

    def _raw_scores(self, items: Sequence[ScoringInput], policy: Policy) -> list[dict[str, float]]:
        """`raw_scores` of items whose OCR hint is already read."""
        out: list[dict[str, float]] = []
        step = self.max_images_per_forward
        with self._lock:
            for start in range(0, len(items), step):
                out += scoring.score_shared_prefix(
                    self.model,
                    self.processor,
                    items[start : start + step],
                    policy,
                    yes_no=self.yes_no,
                    layout=self.layout,
                    reuse=self._static,
                )
        return out

    def generate(
        self,
        item: ScoringInput,
        policy: Policy,
        *,
        question: str,
        max_new_tokens: int | None = None,
    ) -> str:
        return self._generate(self.read(item), policy, question, max_new_tokens)

    def _generate(
        self, item: ScoringInput, policy: Policy, question: str, max_new_tokens: int | None
    ) -> str:
        """`generate` for an item whose OCR hint is already read."""
        with self._lock:
            return scoring.generate_reply(
                self.model,
                self.processor,
                item,
                policy,
                question=question,
                max_new_tokens=max_new_tokens
                or self.max_new_tokens
                or grounding.DEFAULT_MAX_NEW_TOKENS,
                layout=self.layout,
            )

    def describe(
        self,
        images: Sequence[Image],
        kinds: Sequence[str] | None = None,
        *,
        max_new_tokens: int = 256,
    ) -> list[str]:
        """A detailed description of each image or frame (`kinds`: "image" / "frame"), in
        order, generated greedily in batches of `batch_size` (model.describe)."""
        from storage.errors import WardenError

        if not self.sees_images:
            raise WardenError(f"{self.model_version} cannot see images: it writes no description")
        with self._lock:
            return generate_descriptions(
                self.model,
                self.processor,
                images,
                list(kinds) if kinds is not None else ["image"] * len(images),
                max_new_tokens=max_new_tokens,
                batch_size=self.batch_size,
            )

    def score(
        self,
        items: Sequence[ScoringInput],
        policy: Policy,
        *,
        rationale: bool = False,
    ) -> list[Verdict]:
        verdicts: list[Verdict] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            read = [self.read(i) for i in chunk]  # once per item, for scores and rationale
            t0 = time.perf_counter()
            raw = self._raw_scores(read, policy)
            # One batched forward serves the whole chunk: latency is its share per item.
            per_item_ms = (time.perf_counter() - t0) * 1000 / len(chunk)
            for item, as_read, scores in zip(chunk, read, raw, strict=True):
                verdicts.append(
                    self._verdict(item, as_read, policy, scores, per_item_ms, rationale)
                )
        return verdicts

    def _verdict(
        self,
        item: ScoringInput,
        as_read: ScoringInput,
        policy: Policy,
        raw: dict[str, float],
        latency_ms: float,
        rationale: bool,
    ) -> Verdict:
        signals: dict[str, object] = dict(item.signals)
        if as_read.ocr_text != item.ocr_text:
            signals["ocr_read_as"] = as_read.ocr_text  # what the prompt held; ocr_text stays raw
        scores = raw
        if self.calibration is not None:
            scores = self.calibration.apply(raw)
            signals["raw_scores"] = raw
        text = reply = None
        parse_ok = None
        if rationale:
            t0 = time.perf_counter()
            # Models that ground are asked for boxes too, in their own convention.
            convention = grounding.convention_for(self.model)
            question = prompts.rationale_question(policy)
            question += grounding.grounding_question(convention, len(item.images))
            # Boxes take tokens: the budget grows with the categories and images asked about.
            budget = grounding.verdict_max_new_tokens(
                self.max_new_tokens,
                policy,
                convention,
                len(item.images),
                self.processor.tokenizer,
            )
            reply = self._generate(as_read, policy, question, budget)
            latency_ms += (time.perf_counter() - t0) * 1000
            parsed = parse_rationale(reply, policy)
            parse_ok = parsed is not None
            if parsed is not None:
                text = parsed.rationale
                signals["rationale_categories"] = list(parsed.categories)
            if parsed is not None and convention is not None and parsed.boxes is not None:
                regions, dropped = grounding.parse_boxes(
                    parsed.boxes, policy, item.images, convention, self.processor
                )
                signals["evidence_regions"] = regions
                signals["boxes_dropped"] = dropped
        return Verdict(
            scores=scores,
            flagged=policy.flagged(scores),
            model_version=self.model_version,
            policy_version=policy.version,
            latency_ms=latency_ms,
            rationale=text,
            ocr_text=item.ocr_text,
            raw_reply=reply,
            parse_ok=parse_ok,
            signals=signals,
        )
