"""The `openai` backend: score items through an OpenAI-compatible server (vLLM, for teams past
one GPU), with exactly the prompts the transformers backend uses (`model.prompts`).

Scores come from `logprobs`, not from generated numbers: for each policy category one chat
completion with `max_tokens=1, logprobs=true, top_logprobs=K` is asked the category question,
and the category score is P(Yes) normalised over the answer tokens found in the returned
top-K distribution: P(Yes) / (P(Yes) + P(No)), the same quantity the transformers backend
reads from the next-token logits. Requests for one item share the image prefix, which vLLM's
prefix cache reuses; they are sent concurrently.

When an answer token is absent from the top-K list its probability is at most that of the
K-th listed token, and that bound is used:
- only "Yes" listed: score = P(Yes) / (P(Yes) + p_K), a lower bound; noted in
  `signals["logprob_bounded"]`;
- only "No" listed: score = p_K / (p_K + P(No)), an upper bound; noted the same way;
- neither listed: the category has no score. It is left out of `Verdict.scores` (so it is
  never flagged on a guess) and listed in `signals["missing_scores"]`; raise `top_logprobs`
  (vLLM: `--max-logprobs`) if this happens often.
A server that ignores `logprobs` altogether (e.g. `transformers serve`) is refused with a clear
error rather than scored by guesswork.

The rationale, when asked for, is a normal greedy completion parsed by the strict parser the
transformers backend uses (`model.rationale`); a reply that does not parse sets
`parse_ok=False` and keeps the raw text. Images travel as PNG data URIs (lossless, so the
server sees the same pixels as a local model would).

Run: WARDEN_MODEL__OPENAI_BASE_URL=http://127.0.0.1:8000/v1 WARDEN_MODEL__OPENAI_MODEL=M \
    warden score --model openai
"""

from __future__ import annotations

import base64
import io
import logging
import math
import random
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

from model.grounding import (
    convention_for_name,
    grounded_signals,
    grounding_question,
    verdict_max_new_tokens,
)
from model.prompts import (
    ANSWER_NO,
    ANSWER_YES,
    build_messages,
    category_question,
    describe_messages,
    rationale_question,
)
from storage.domain import Verdict
from storage.errors import WardenError

if TYPE_CHECKING:
    from PIL.Image import Image

    from model.backends import ScoringInput
    from model.grounding import Convention
    from storage.policy import Policy
    from storage.settings import ModelSettings

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class ServerError(WardenError):
    """The server cannot be used at all (unreachable, refuses, lacks logprobs).

    `systemic = True` tells the scoring worker to stop instead of charging the failure to the
    item being scored: every other item would fail the same way.
    """

    systemic = True


def image_data_uri(image: Image) -> str:
    """A PNG data URI of the image in RGB."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_openai_messages(
    messages: list[dict[str, Any]], data_uri: str | Sequence[str]
) -> list[dict[str, Any]]:
    """Hugging Face multimodal chat (from `model.prompts`) -> OpenAI chat format.

    `{"type": "image"}` parts become `image_url` parts carrying the data URIs, in order (one
    URI, or one per image of a post / frame of a video); text-only turns are sent as plain
    strings, which every OpenAI-compatible server accepts for any role.
    """
    uris = iter([data_uri] if isinstance(data_uri, str) else list(data_uri))
    out: list[dict[str, Any]] = []
    for msg in messages:
        parts = msg["content"]
        if isinstance(parts, str):
            out.append({"role": msg["role"], "content": parts})
            continue
        if all(p.get("type") == "text" for p in parts):
            out.append({"role": msg["role"], "content": "".join(p["text"] for p in parts)})
            continue
        converted: list[dict[str, Any]] = []
        for p in parts:
            if p.get("type") == "image":
                uri = next(uris, None)
                if uri is None:
                    raise ValueError("more image placeholders than images")
                converted.append({"type": "image_url", "image_url": {"url": uri}})
            else:
                converted.append({"type": "text", "text": p["text"]})
        out.append({"role": msg["role"], "content": converted})
    return out


def yes_probability(top_logprobs: list[dict[str, Any]]) -> tuple[float | None, bool]:
    """P(Yes) normalised over Yes/No from one position's `top_logprobs` list.

    Returns (score, bounded): `bounded` is True when one answer token was missing and the
    K-th listed probability stood in for it (see the module docstring); score None when
    neither answer token was listed. Tokens match exactly ("Yes", not " Yes" or "yes"): the
    transformers backend reads exactly those two token ids, and the two backends must agree.
    """
    if not top_logprobs:
        return None, False
    p_yes = p_no = 0.0
    seen_yes = seen_no = False
    for entry in top_logprobs:
        token = str(entry.get("token", ""))
        p = math.exp(float(entry["logprob"]))
        if token == ANSWER_YES:
            p_yes += p
            seen_yes = True
        elif token == ANSWER_NO:
            p_no += p
            seen_no = True
    if seen_yes and seen_no:
        return p_yes / (p_yes + p_no), False
    if not seen_yes and not seen_no:
        return None, False
    p_floor = min(math.exp(float(e["logprob"])) for e in top_logprobs)
    if seen_yes:
        return p_yes / (p_yes + p_floor), True
    return p_floor / (p_floor + p_no), True


class OpenAIBackend:
    """Backend over an OpenAI-compatible `/v1/chat/completions` endpoint.

    `base_url` ends in `/v1` (as with the OpenAI client). `model` is the served model name.
    `model_version` defaults to "openai:<model>", recorded with every prediction; the same
    weights served remotely and loaded locally are different versions on purpose (different
    numerics, different runtime).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        model_version: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        top_logprobs: int = 20,
        max_new_tokens: int | None = None,
        max_concurrency: int = 8,
        transport: httpx.BaseTransport | None = None,
        grounding: Convention | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._model_version = model_version or f"openai:{model}"
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.top_logprobs = top_logprobs
        self.max_new_tokens = max_new_tokens
        self.max_concurrency = max(1, max_concurrency)
        # Box convention of a served model that grounds (model.grounding): its verdicts are
        # asked for boxes too. `from_settings` tells it from the served name.
        self.grounding = grounding
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=self.max_concurrency * 2),
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: ModelSettings, **kwargs: Any) -> OpenAIBackend:
        """Build from `WARDEN_MODEL__OPENAI_BASE_URL` / `_MODEL` / `_API_KEY`."""
        if not settings.openai_base_url:
            raise WardenError(
                "the openai backend needs a server URL: set WARDEN_MODEL__OPENAI_BASE_URL "
                "(e.g. http://127.0.0.1:8000/v1)"
            )
        model = settings.openai_model or settings.name
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        kwargs.setdefault("max_new_tokens", settings.max_new_tokens)
        kwargs.setdefault("grounding", convention_for_name(model))
        return cls(settings.openai_base_url, model, api_key=key, **kwargs)

    @property
    def model_version(self) -> str:
        return self._model_version

    def close(self) -> None:
        self._client.close()

    # -- HTTP ------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on connection errors, timeouts, 429 and 5xx; WardenError after."""
        url = f"{self.base_url}{path}"
        last: str = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                # Exponential backoff with jitter, so several workers do not retry in step.
                time.sleep(self.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
            try:
                resp = self._client.post(path, json=body)
            except httpx.TimeoutException as exc:
                last = f"no answer within the timeout ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code in _RETRY_STATUS:
                last = f"HTTP {resp.status_code}: {resp.text[:300]}"
                continue
            if resp.status_code >= 400:
                raise ServerError(
                    f"the OpenAI-compatible server at {url} refused the request: "
                    f"HTTP {resp.status_code}: {resp.text[:300]}"
                )
            try:
                data = resp.json()
            except ValueError as exc:
                raise ServerError(f"{url} did not answer with JSON: {resp.text[:200]!r}") from exc
            if not isinstance(data, dict) or not data.get("choices"):
                raise ServerError(f"{url} answered without choices: {str(data)[:200]}")
            return data
        raise ServerError(
            f"cannot reach the OpenAI-compatible server at {url} after "
            f"{self.max_retries + 1} attempts ({last}); is it running? "
            "(WARDEN_MODEL__OPENAI_BASE_URL)"
        )

    def _chat(self, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        body = {"model": self.model, "messages": messages, "temperature": 0.0, **params}
        return self._post("/chat/completions", body)

    # -- scoring ---------------------------------------------------------------------------

    def _category_score(
        self, item: ScoringInput, policy: Policy, cat_index: int, data_uri: list[str]
    ) -> tuple[float | None, bool]:
        category = policy.categories[cat_index]
        messages = build_messages(
            policy,
            text=item.text,
            ocr_text=item.ocr_text,
            question=category_question(category),
            media_ocr=item.media_ocr,
        )
        data = self._chat(
            to_openai_messages(messages, data_uri),
            max_tokens=1,
            logprobs=True,
            top_logprobs=self.top_logprobs,
        )
        choice = data["choices"][0]
        content = (choice.get("logprobs") or {}).get("content") or []
        if not content or "top_logprobs" not in content[0]:
            raise ServerError(
                f"the server at {self.base_url} returned no logprobs; the openai backend reads "
                "scores from logprobs (vLLM supports them; `transformers serve` ignores them)"
            )
        return yes_probability(content[0]["top_logprobs"] or [])

    def _rationale(self, item: ScoringInput, policy: Policy, data_uri: list[str]) -> str:
        messages = build_messages(
            policy,
            text=item.text,
            ocr_text=item.ocr_text,
            question=rationale_question(policy)
            + grounding_question(self.grounding, len(item.images)),
            media_ocr=item.media_ocr,
        )
        budget = verdict_max_new_tokens(
            self.max_new_tokens, policy, self.grounding, len(item.images)
        )
        data = self._chat(to_openai_messages(messages, data_uri), max_tokens=budget)
        return str(data["choices"][0].get("message", {}).get("content") or "")

    def _submit(
        self, item: ScoringInput, policy: Policy, rationale: bool, pool: ThreadPoolExecutor
    ) -> tuple[float, list[Future[tuple[float | None, bool]]], Future[str] | None]:
        t0 = time.perf_counter()
        data_uri = [image_data_uri(image) for image in item.images]
        futures = [
            pool.submit(self._category_score, item, policy, i, data_uri)
            for i in range(len(policy.categories))
        ]
        reply = pool.submit(self._rationale, item, policy, data_uri) if rationale else None
        return t0, futures, reply

    def _collect(
        self,
        item: ScoringInput,
        policy: Policy,
        t0: float,
        futures: list[Future[tuple[float | None, bool]]],
        reply_future: Future[str] | None,
    ) -> Verdict:
        scores: dict[str, float] = {}
        missing: list[str] = []
        bounded: list[str] = []
        for category, fut in zip(policy.categories, futures, strict=True):
            score, is_bound = fut.result()
            if score is None:
                missing.append(category.id)
                continue
            scores[category.id] = float(score)
            if is_bound:
                bounded.append(category.id)
        signals: dict[str, object] = dict(item.signals)
        if missing:
            log.warning("no Yes/No in top_logprobs for %s (item %s)", missing, item.item_id)
            signals["missing_scores"] = missing
        if bounded:
            signals["logprob_bounded"] = bounded
        raw = parsed_text = None
        parse_ok: bool | None = None
        if reply_future is not None:
            raw = reply_future.result()
            parsed_text, parse_ok = _parse_rationale(raw, policy)
            if parse_ok and self.grounding is not None:
                signals.update(grounded_signals(raw, policy, item.images, self.grounding))
        return Verdict(
            scores=scores,
            flagged=policy.flagged(scores),
            model_version=self.model_version,
            policy_version=policy.version,
            latency_ms=(time.perf_counter() - t0) * 1000,
            rationale=parsed_text,
            ocr_text=item.ocr_text,
            raw_reply=raw,
            parse_ok=parse_ok,
            signals=signals,
        )

    def rationales(
        self, items: Sequence[ScoringInput], policy: Policy
    ) -> list[tuple[str, str | None, bool]]:
        """Only the rationale completions: (raw reply, parsed rationale, parse_ok) per item.

        Needs no logprobs, so it also works against servers that ignore them."""
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            raws = list(
                pool.map(
                    lambda it: self._rationale(it, policy, [image_data_uri(i) for i in it.images]),
                    items,
                )
            )
        return [(raw, *_parse_rationale(raw, policy)) for raw in raws]

    # A served model is taken to see images (the demo checkpoint is never served this way).
    sees_images = True

    def _describe_one(self, image: Image, kind: str, max_new_tokens: int) -> str:
        messages = to_openai_messages(describe_messages(kind), image_data_uri(image))
        data = self._chat(messages, max_tokens=max_new_tokens)
        return str(data["choices"][0].get("message", {}).get("content") or "")

    def describe(
        self,
        images: Sequence[Image],
        kinds: Sequence[str] | None = None,
        *,
        max_new_tokens: int = 256,
    ) -> list[str]:
        """A detailed description of each image or frame, in order (model.describe): one
        greedy completion each, `max_concurrency` in flight, so the server batches them."""
        from model.describe import clean

        kinds = list(kinds) if kinds is not None else ["image"] * len(images)
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            replies = list(
                pool.map(
                    lambda pair: self._describe_one(pair[0], pair[1], max_new_tokens),
                    zip(images, kinds, strict=True),
                )
            )
        return [clean(r) for r in replies]

    def score(
        self, items: Sequence[ScoringInput], policy: Policy, *, rationale: bool = False
    ) -> list[Verdict]:
        """One Verdict per item, in order. Every request of the batch is queued at once and
        `max_concurrency` run in flight, so a vLLM server can batch them."""
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            try:
                pending = [self._submit(item, policy, rationale, pool) for item in items]
                return [
                    self._collect(item, policy, *p) for item, p in zip(items, pending, strict=True)
                ]
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def _parse_rationale(raw: str, policy: Policy) -> tuple[str | None, bool]:
    """(rationale text, parse_ok) through the transformers backend's strict parser."""
    from model.rationale import parse_rationale

    parsed = parse_rationale(raw, policy)
    if parsed is None:
        return None, False
    return parsed.rationale, True
