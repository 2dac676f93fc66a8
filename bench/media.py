"""Posts and videos: frames per second of video ingest, and scoring time per post of N images
(one prompt, shared prefix) against the same N images scored as N single items.

Video: a generated H.264 clip (PyAV, `--seconds` at 24 fps, 320x240, a scene cut every 2 s)
decoded and sampled by `storage.video.decode_video` (8 frames); decoded frames per second.
Posts: the tiny InternVL of `model.tiny` on CPU (or `--model DIR`), `--images` noise images
with OCR lines: one `score_shared_prefix` call on the post, one on the N single items, and the
per-medium evidence pass (`model.evidence`, N single items scored again) that a post adds.
Descriptions (`model.describe`, WARDEN_MODEL__DESCRIBE): the same N images described in one
batched greedy generation of up to `--describe-tokens` tokens each, and one at a time; seconds
per image (a random tiny model: the cost of the decode steps, not of a useful description; a
real model's time scales with the tokens it writes).

Run: python bench/media.py [--images 3] [--seconds 10] [--repeats 5] [--model DIR]
                          [--describe-tokens 64] [--parts video,post,describe] [--results PATH]
     python bench/media.py --parts describe --results bench/results/media_describe.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import results_or_exit, start, write_results  # noqa: E402


def _video_fps(seconds: int, repeats: int) -> dict[str, float]:
    from storage.settings import LimitSettings
    from storage.video import decode_video
    from tests.storage._videos import encode_video

    data = encode_video(seconds * 24, size=(320, 240), fps=24, cut=48)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        video = decode_video(data, LimitSettings())
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "video_seconds": seconds,
        "frames_decoded": video.frames_decoded,
        "frames_sampled": len(video.frames),
        "decode_and_sample_s_median": round(statistics.median(times), 4),
        "decoded_frames_per_s": round(video.frames_decoded / statistics.median(times), 1),
        "best_s": round(best, 4),
    }


def _post_scoring(model_dir: Path | None, n: int, repeats: int) -> dict[str, float]:
    import numpy as np
    from PIL import Image

    from model import loading
    from model.backends import MediumInput, ScoringInput
    from model.scoring import score_shared_prefix
    from model.tiny import make_tiny
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY, ModelSettings

    if model_dir is None:
        model_dir = make_tiny(Path(tempfile.mkdtemp()) / "internvl", "internvl", seed=0)
    plan = loading.plan_load(
        ModelSettings(name=str(model_dir), quant="none", device="cpu", dtype="float32")
    )
    model, processor = loading.load_model(plan)
    policy = load_policy(DEFAULT_POLICY)
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) for _ in range(n)
    ]
    media = tuple(
        MediumInput(img, f"line of text {k}", f"Image {k + 1}") for k, img in enumerate(images)
    )
    post = ScoringInput(images[0], text="a caption", media=media)
    singles = post.single_media()

    def timed(inputs: list[ScoringInput]) -> float:
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            score_shared_prefix(model, processor, inputs, policy)
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs)

    timed([post])  # warm-up
    post_s = timed([post])
    singles_s = timed(singles)
    return {
        "images": n,
        "post_one_prompt_s": round(post_s, 4),
        "n_single_items_s": round(singles_s, 4),
        "post_with_evidence_pass_s": round(post_s + singles_s, 4),
        "post_vs_singles": round(post_s / singles_s, 3),
        "model": str(model_dir),
    }


def _descriptions(
    model_dir: Path | None, n: int, repeats: int, max_new_tokens: int
) -> dict[str, float | int | str]:
    import numpy as np
    from PIL import Image

    from model import loading
    from model.describe import generate_descriptions
    from model.tiny import make_tiny
    from storage.settings import ModelSettings

    if model_dir is None:
        model_dir = make_tiny(Path(tempfile.mkdtemp()) / "internvl", "internvl", seed=0)
    plan = loading.plan_load(
        ModelSettings(name=str(model_dir), quant="none", device="cpu", dtype="float32")
    )
    model, processor = loading.load_model(plan)
    rng = np.random.default_rng(1)
    images = [
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) for _ in range(n)
    ]
    kinds = ["image"] * n

    def timed(batch: int) -> tuple[float, list[str]]:
        runs, texts = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            texts = generate_descriptions(
                model, processor, images, kinds, max_new_tokens=max_new_tokens, batch_size=batch
            )
            runs.append(time.perf_counter() - t0)
        return statistics.median(runs), texts

    timed(n)  # warm-up
    batched_s, texts = timed(n)
    single_s, _ = timed(1)
    return {
        "images": n,
        "max_new_tokens": max_new_tokens,
        "batched_s": round(batched_s, 4),
        "batched_s_per_image": round(batched_s / n, 4),
        "one_at_a_time_s_per_image": round(single_s / n, 4),
        "batched_vs_one_at_a_time": round(batched_s / single_s, 3),
        "empty_descriptions": sum(1 for t in texts if not t),
        "model": str(model_dir),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--describe-tokens", type=int, default=64)
    parser.add_argument(
        "--parts",
        default="video,post,describe",
        help="comma-separated: video, post, describe (measure some without the others)",
    )
    parser.add_argument(
        "--results", "--out", dest="out", default=None, help="Default: bench/results/media.json."
    )
    args = parser.parse_args(argv)
    out = results_or_exit(parser, args.out, "media.json")
    prov = start(__file__, argv)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - {"video", "post", "describe"}
    if unknown or not parts:
        parser.error(f"--parts: unknown {sorted(unknown)}; use video, post, describe")
    if args.model is None and parts & {"post", "describe"}:
        from model.tiny import make_tiny

        args.model = make_tiny(Path(tempfile.mkdtemp()) / "internvl", "internvl", seed=0)
    payload: dict[str, object] = {}
    if "video" in parts:
        payload["video_ingest"] = _video_fps(args.seconds, args.repeats)
    if "post" in parts:
        payload["post_scoring"] = _post_scoring(args.model, args.images, args.repeats)
    if "describe" in parts:
        payload["descriptions"] = _descriptions(
            args.model, args.images, args.repeats, args.describe_tokens
        )
    print(payload)
    write_results(out, payload, prov)


if __name__ == "__main__":
    main()
