"""The openai backend against real servers.

Two servers, and which is which matters:
- `transformers serve` (a real OpenAI-compatible server, run as a subprocess on the tiny model):
  exercises the HTTP path, images as data URIs, rationale completions and error handling. It
  ignores `logprobs`, so scoring against it must fail with a clear error, not guess.
- `tests/model/openai_protocol_server.py` (a TEST server written for this suite, in-process on
  a socket): serves the same tiny model with real `top_logprobs`, in the OpenAI response shape,
  as vLLM would. The backend's scores from it are compared with the transformers backend's
  scores for the same model and images: both read the same next-token distribution.

Run: .venv/bin/pytest tests/model/test_openai_backend.py -q
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from model.backends import ScoringInput
from model.openai_backend import OpenAIBackend, ServerError, yes_probability
from storage.errors import WardenError
from storage.policy import Policy, load_policy
from storage.settings import DEFAULT_POLICY, ModelSettings

sys.path.insert(0, str(Path(__file__).parent))
from openai_protocol_server import ProtocolServer  # noqa: E402

TINY_VOCAB = 768  # model.tiny.VOCAB_SIZE: ask for every token's logprob
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from model.tiny import make_tiny

    return make_tiny(tmp_path_factory.mktemp("openai-tiny") / "internvl", "internvl", seed=0)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(DEFAULT_POLICY)


@pytest.fixture(scope="module")
def items() -> list[ScoringInput]:
    banner = Image.new("RGB", (320, 120), "white")
    ImageDraw.Draw(banner).text(
        (10, 40), "BUY PILLS", font=ImageFont.truetype(FONT, 32), fill="black"
    )
    photo = Image.new("RGB", (200, 150), (30, 120, 60))
    return [
        ScoringInput(image=banner, text="dm me", ocr_text="BUY PILLS", item_id=1),
        ScoringInput(image=photo, text=None, ocr_text="", item_id=2),
    ]


@pytest.fixture(scope="module")
def protocol_server(tiny_model: Path) -> Iterator[ProtocolServer]:
    with ProtocolServer(tiny_model) as srv:
        yield srv


@pytest.fixture(scope="module")
def transformers_serve(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`transformers serve MODEL_DIR` on a free port; yields its /v1 URL."""
    port = _free_port()
    exe = Path(sys.executable).with_name("transformers")
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(exe),
                "serve",
                str(tiny_model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--device",
                "cpu",
                "--dtype",
                "float32",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {log_path.read_text()[-2000:]}")
            try:
                httpx.post(f"{url}/chat/completions", json={}, timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("transformers serve did not start within 120 s")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- pure logprob arithmetic ----------------------------------------------------------------


def test_yes_probability_normalises_over_answer_tokens() -> None:
    lp = [
        {"token": "Yes", "logprob": math.log(0.6)},
        {"token": " Yes", "logprob": math.log(0.1)},  # another token: not the answer token
        {"token": "No", "logprob": math.log(0.2)},
        {"token": "Maybe", "logprob": math.log(0.05)},
    ]
    score, bounded = yes_probability(lp)
    assert score == pytest.approx(0.6 / 0.8) and not bounded


def test_yes_probability_bounds_a_missing_answer_and_refuses_when_both_missing() -> None:
    only_yes = [
        {"token": "Yes", "logprob": math.log(0.5)},
        {"token": "x", "logprob": math.log(0.1)},
    ]
    score, bounded = yes_probability(only_yes)
    assert bounded and score == pytest.approx(0.5 / 0.6)  # P(No) <= 0.1, the last listed
    only_no = [{"token": "No", "logprob": math.log(0.8)}, {"token": "x", "logprob": math.log(0.02)}]
    score, bounded = yes_probability(only_no)
    assert bounded and score == pytest.approx(0.02 / 0.82)
    assert yes_probability([{"token": "x", "logprob": -1.0}]) == (None, False)
    assert yes_probability([]) == (None, False)


# -- protocol test server (real logprobs) ---------------------------------------------------


@pytest.mark.slow
def test_scores_match_the_transformers_backend(
    protocol_server: ProtocolServer, tiny_model: Path, policy: Policy, items: list[ScoringInput]
) -> None:
    from model.loading import load_backend

    local = load_backend(
        ModelSettings(name=str(tiny_model), device="cpu", dtype="float32", quant="none")
    )
    remote = OpenAIBackend(protocol_server.url, "tiny", top_logprobs=TINY_VOCAB)
    expected = local.score(items, policy)
    got = remote.score(items, policy)
    assert len(got) == len(items)
    for item, e, g in zip(items, expected, got, strict=True):
        assert set(g.scores) == set(policy.ids)
        for cid in policy.ids:
            assert g.scores[cid] == pytest.approx(e.scores[cid], abs=2e-4), cid
        assert g.flagged == e.flagged
        assert g.model_version == "openai:tiny" and g.policy_version == policy.version
        assert g.ocr_text == item.ocr_text  # the OCR hint that went into the prompt
    # Different inputs give different scores: the server really read the image and prompt.
    assert got[0].scores != got[1].scores


def test_missing_answer_tokens_leave_the_category_unscored(
    protocol_server: ProtocolServer, policy: Policy, items: list[ScoringInput]
) -> None:
    # With random weights, "Yes"/"No" are not among the 20 likeliest of 768 tokens.
    backend = OpenAIBackend(protocol_server.url, "tiny", top_logprobs=20)
    verdict = backend.score(items[:1], policy)[0]
    missing = verdict.signals.get("missing_scores", [])
    assert missing, "expected the tiny model to rank Yes/No outside its top 20"
    assert set(missing).isdisjoint(verdict.scores)
    assert set(missing) | set(verdict.scores) == set(policy.ids)
    assert set(verdict.flagged) <= set(verdict.scores)  # nothing flagged on a guess


def test_transient_503s_are_retried(
    tiny_model: Path, policy: Policy, items: list[ScoringInput]
) -> None:
    with ProtocolServer(tiny_model, fail_first=2) as srv:
        backend = OpenAIBackend(
            srv.url, "tiny", top_logprobs=TINY_VOCAB, backoff_s=0.01, max_concurrency=1
        )
        verdict = backend.score(items[1:], policy)[0]
        assert set(verdict.scores) == set(policy.ids)
        assert srv.requests == 2 + len(policy.ids)


def test_unreachable_server_is_a_clear_error(policy: Policy, items: list[ScoringInput]) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    backend = OpenAIBackend(url, "tiny", max_retries=1, backoff_s=0.01, connect_timeout_s=1)
    t0 = time.monotonic()
    with pytest.raises(WardenError, match="cannot reach the OpenAI-compatible server") as info:
        backend.score(items[:1], policy)
    assert getattr(info.value, "systemic", False)
    assert time.monotonic() - t0 < 10


def test_settings_without_url_are_refused() -> None:
    with pytest.raises(WardenError, match="WARDEN_MODEL__OPENAI_BASE_URL"):
        OpenAIBackend.from_settings(ModelSettings(name="openai"))


# -- transformers serve (real server, no logprobs) -------------------------------------------


@pytest.mark.slow
def test_transformers_serve_rationale_matches_the_protocol_server(
    transformers_serve: str,
    protocol_server: ProtocolServer,
    tiny_model: Path,
    policy: Policy,
    items: list[ScoringInput],
) -> None:
    real = OpenAIBackend(transformers_serve, str(tiny_model), max_new_tokens=12)
    ours = OpenAIBackend(protocol_server.url, "tiny", max_new_tokens=12)
    got = real.rationales(items, policy)
    ref = ours.rationales(items, policy)
    for (raw, text, ok), (ref_raw, _, _) in zip(got, ref, strict=True):
        # Both run greedy decoding of the same prompt on the same weights.
        assert raw == ref_raw
        # A random tiny model does not write the JSON verdict: counted, never guessed.
        assert ok is False and text is None


@pytest.mark.slow
def test_transformers_serve_without_logprobs_is_refused_clearly(
    transformers_serve: str, tiny_model: Path, policy: Policy, items: list[ScoringInput]
) -> None:
    backend = OpenAIBackend(transformers_serve, str(tiny_model))
    with pytest.raises(ServerError, match="returned no logprobs"):
        backend.score(items[:1], policy)


@pytest.mark.slow
def test_refusals_from_a_real_server_are_clear_errors(
    transformers_serve: str, tiny_model: Path, policy: Policy, items: list[ScoringInput]
) -> None:
    wrong_model = OpenAIBackend(transformers_serve, "no-such-model", max_retries=0)
    with pytest.raises(WardenError, match="refused the request: HTTP 400.*no-such-model"):
        wrong_model.score(items[:1], policy)
    wrong_path = OpenAIBackend(
        transformers_serve.replace("/v1", "/v9"), str(tiny_model), max_retries=0
    )
    with pytest.raises(WardenError, match="refused the request: HTTP 404"):
        wrong_path.score(items[:1], policy)


def test_descriptions_are_the_served_models_greedy_reply_per_image(
    protocol_server: ProtocolServer, tiny_model: Path, items: list[ScoringInput]
) -> None:
    """One completion per image or frame, with the describe prompt and that image: the reply
    is what the same weights generate for that prompt locally (cleaned, model.describe)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from model.describe import clean
    from model.prompts import describe_messages

    backend = OpenAIBackend(protocol_server.url, "tiny")
    assert backend.sees_images
    images = [i.image for i in items]
    before = protocol_server.requests
    got = backend.describe(images, ["image", "frame"], max_new_tokens=8)
    assert protocol_server.requests - before == 2
    processor = AutoProcessor.from_pretrained(tiny_model)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32).eval()
    want = []
    for image, kind in zip(images, ["image", "frame"], strict=True):
        text = processor.apply_chat_template(
            describe_messages(kind), add_generation_prompt=True, tokenize=False
        )
        enc = processor(text=[text], images=[[image.convert("RGB")]], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=8, do_sample=False)
        new = out[0, enc["input_ids"].shape[1] :]
        want.append(clean(processor.tokenizer.decode(new, skip_special_tokens=True)))
    assert got == want
    # The frame is asked about as a video frame, the image as an image.
    assert "video frame" in describe_messages("frame")[1]["content"][1]["text"]
    assert "video frame" not in describe_messages("image")[1]["content"][1]["text"]
