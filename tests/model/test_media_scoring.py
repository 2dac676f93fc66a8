"""Several images in ONE prompt on the tiny real-architecture models that take them (InternVL,
Qwen2-VL): shared-prefix scores of a 3-image post, batched with a single image (so rows hold
different image counts and are padded), equal the naive per-category pass; the post's scores
depend on every image, not only the cover."""

from __future__ import annotations

import pytest

from model.backends import MediumInput, ScoringInput
from model.loading import load_backend
from model.scoring import score_naive, score_shared_prefix
from storage.settings import ModelSettings
from tests.model.conftest import noise_image


@pytest.mark.parametrize("arch", ["internvl", "qwen2vl"])
def test_post_of_three_images_scores_in_one_prompt(arch, tiny_model_dir, policy) -> None:
    backend = load_backend(
        ModelSettings(name=str(tiny_model_dir(arch)), quant="none", dtype="float32", device="cpu")
    )
    media = tuple(
        MediumInput(noise_image(30 + k, (120 + 40 * k, 100)), f"text {k}", f"Image {k + 1}")
        for k in range(3)
    )
    post = ScoringInput(media[0].image, text="caption", media=media)
    single = ScoringInput(noise_image(9), text="caption", ocr_text="WIN")
    got = score_shared_prefix(backend.model, backend.processor, [post, single], policy)
    for item, row in zip((post, single), got, strict=True):
        want = score_naive(backend.model, backend.processor, item, policy)
        for cid in policy.ids:
            assert row[cid] == pytest.approx(want[cid], abs=1e-4), (arch, cid)
    # Another third image changes the post's scores: every image is in the prompt.
    other = ScoringInput(
        media[0].image,
        text="caption",
        media=(*media[:2], MediumInput(noise_image(99, (200, 200)), "text 2", "Image 3")),
    )
    [changed] = score_shared_prefix(backend.model, backend.processor, [other], policy)
    assert max(abs(changed[c] - got[0][c]) for c in policy.ids) > 1e-6
