"""Benchmark: shared-prefix category scoring against naive scoring and JSON generation.

One run measures images/s for (a) shared-prefix batched scoring (`model.scoring`), (b) one full
sequence per category, (c) generating a 64-token JSON verdict per image (the LlavaGuard way),
and (d) transformers' own `pipeline("decision")`, with the 11 default policy categories, on the
tiny InternVL and on a random-weight model with InternVL3.5-2B's real shapes (InternViT-300M +
Qwen3-1.7B, 448 px, 256 image tokens) in bf16. It also loads the real-shape model 4-bit and bf16
through `model.loading` in separate processes and measures each one's peak RSS on the CPU
(the figure the summary reports); weight bytes summed from tensor sizes are kept beside it as
`weights_bytes_computed`, a computation, not a measurement.

Every scoring figure is taken in both prompt layouts (`model.prompts`): "question" (each
category's description in its question; every Warden checkpoint so far) and, under the key
`policy_layout`, "policy" (the policy listed once in the system turn, a ~15-token question per
category), which is what brings the real shape near the ideal of one prefix + 11 short
continuations. On a GPU machine, --memory-device cuda adds 8-bit and
torch.cuda.max_memory_allocated during a scoring batch of --memory-batch images.

Run: .venv/bin/python bench/scoring.py [--images-tiny 8] [--images-big 3] [--skip-big]
     [--layers VISION,TEXT] [--skip-memory] [--memory-only] [--results PATH]
     [--no-policy-layout] [--memory-device cpu|cuda] [--memory-batch 8]
Each shared-prefix figure is split into prefix and continuation ms per image (wall, and the
process's CPU time: wall well above it is waiting for a core on a shared CPU), beside the older
layout (a0: the KV cache repeated per category, padded questions) for before/after. The two
layouts' speeds are compared in one loop that alternates them image by image
(`layouts_same_run`, `compare_layouts`): sections timed minutes apart see different loads.
Writes bench/results/scoring.json (or --results: a .json file or a folder) with its provenance
(bench/provenance.py) and prints a table. Scratch: temp dirs (TMPDIR), removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench import provenance  # noqa: E402
from model import prompts  # noqa: E402
from model.backends import ScoringInput  # noqa: E402
from model.scoring import generate_reply, score_naive, score_shared_prefix  # noqa: E402
from storage.policy import Policy, load_policy  # noqa: E402
from storage.settings import DEFAULT_POLICY, ModelSettings  # noqa: E402

RESULTS_NAME = "scoring.json"
GEN_TOKENS = 64


def _images(n: int, seed: int = 0) -> list[ScoringInput]:
    rng = np.random.default_rng(seed)
    return [
        ScoringInput(
            image=Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)),
            text="check this out" if i % 2 else None,
            ocr_text=f"WIN A FREE PHONE call 555 01{i:02d}",
        )
        for i in range(n)
    ]


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _timed_cpu(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of `fn()`."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def _decision_pipeline(
    model: Any, processor: Any, items: list[ScoringInput], policy: Policy
) -> None:
    from transformers import pipeline
    from transformers.decision import DecisionConfig

    decide = pipeline(
        "decision",
        model=model,
        tokenizer=processor.tokenizer,
        processor=processor,
        decision_config=DecisionConfig(),
    )
    questions = {
        c.id: {"type": "noul", "instructions": prompts.category_question(c)}
        for c in policy.categories
    }
    for item in items:
        state = "<img-1>\n" + prompts.context_text(text=item.text, ocr_text=item.ocr_text)
        decide({"state": state, "questions": questions, "assets": {"<img-1>": item.image}})


def measure(
    model: Any,
    processor: Any,
    policy: Policy,
    n_images: int,
    *,
    pipeline_too: bool,
    layout: prompts.PromptLayout = prompts.DEFAULT_LAYOUT,
    generation: bool = True,
) -> dict[str, Any]:
    """Images/s of (a) shared-prefix, (a0) its older layout, (b) naive, (c) JSON generation
    (if `generation`) and (d) the decision pipeline (if `pipeline_too`), every prompt in
    `layout`; prefix vs continuation ms per image and the prompt's token counts."""
    items = _images(n_images)
    # As a serving backend does: the prompts' static start (system turn, and the policy in the
    # "policy" layout) runs once, in the first (warm-up) call, and is reused from then on.
    reuse: dict[str, Any] = {}
    # Warm-up (first-call allocations, kernels) on one image, not timed.
    first: dict[str, float] = {}
    score_shared_prefix(
        model, processor, items[:1], policy, layout=layout, reuse=reuse, timings=first
    )
    score_shared_prefix(
        model, processor, items[:1], policy, packed=False, layout=layout, reuse=reuse
    )
    out: dict[str, Any] = {
        "images": n_images,
        "categories": len(policy.categories),
        "prompt_layout": layout,
        # Computed once per process (per policy), not per image: not in the rates below.
        "static_prefix_tokens": int(first["static_tokens"]),
        "static_prefix_once_ms": 1e3 * first["static_s"],
    }
    out |= _prompt_tokens(processor, policy, items[0], layout)
    step = 4
    parts: dict[str, dict[str, float]] = {}

    def shared(packed: bool) -> None:
        split = parts.setdefault("packed" if packed else "repeated", {})
        for i in range(0, len(items), step):
            t: dict[str, float] = {}
            score_shared_prefix(
                model,
                processor,
                items[i : i + step],
                policy,
                packed=packed,
                timings=t,
                layout=layout,
                reuse=reuse,
            )
            for k, v in t.items():
                split[k] = split.get(k, 0.0) + v

    # (a0) the older layout (cache repeated per category, padded questions), for before/after.
    t_a0 = _timed(lambda: shared(False))
    t_a, cpu_a = _timed_cpu(lambda: shared(True))
    for name, split in parts.items():
        out[f"a_split_{name}"] = {
            "prefix_ms_per_image": 1e3 * split["prefix_s"] / n_images,
            "continuation_ms_per_image": 1e3 * split["continuation_s"] / n_images,
            "continuation_tokens_per_image": split["continuation_tokens"] / n_images,
            # Process CPU time over the same spans: wall well above it = waiting for a core.
            "prefix_cpu_ms_per_image": 1e3 * split["prefix_cpu_s"] / n_images,
            "continuation_cpu_ms_per_image": 1e3 * split["continuation_cpu_s"] / n_images,
        }
    out["a0_shared_prefix_repeated_img_s"] = n_images / t_a0
    t_b, cpu_b = _timed_cpu(
        lambda: [score_naive(model, processor, it, policy, layout=layout) for it in items]
    )
    out |= {
        "a_shared_prefix_img_s": n_images / t_a,
        "b_naive_img_s": n_images / t_b,
        "ratio_a_over_b": t_b / t_a,
        "ratio_a0_over_b": t_b / t_a0,
        # The same ratio in process CPU time: what a change in the load between the two
        # timed spans (minutes apart on the real shape) cannot skew.
        "ratio_a_over_b_cpu": cpu_b / cpu_a,
    }
    if generation:
        q = prompts.rationale_question(policy)
        t_c = _timed(
            lambda: [
                generate_reply(
                    model,
                    processor,
                    it,
                    policy,
                    question=q,
                    max_new_tokens=GEN_TOKENS,
                    min_new_tokens=GEN_TOKENS,
                    layout=layout,
                )
                for it in items
            ]
        )
        out |= {
            "c_generate_json_img_s": n_images / t_c,
            "ratio_a_over_c": t_c / t_a,
            "ratio_a0_over_c": t_c / t_a0,
        }
    if pipeline_too:
        try:
            _decision_pipeline(model, processor, items[:1], policy)  # warm-up
            t_d = _timed(lambda: _decision_pipeline(model, processor, items, policy))
            out["d_decision_pipeline_img_s"] = n_images / t_d
            out["ratio_a_over_d"] = t_d / t_a
        except Exception as exc:  # report, do not hide: the pipeline is new in transformers 5
            out["d_decision_pipeline_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _prompt_tokens(
    processor: Any, policy: Policy, item: ScoringInput, layout: prompts.PromptLayout
) -> dict[str, Any]:
    """Token counts of one scoring prompt: shared prefix (image tokens expanded) and each
    category's question (what the continuation runs)."""
    from model.scoring import continuation_plan, render_prompt_parts

    tok = processor.tokenizer
    split = render_prompt_parts(
        processor, policy, text=item.text, ocr_text=item.ocr_text, layout=layout
    )
    prefix = processor(text=[split.prefix], images=[[item.image]], return_tensors="pt")
    questions = [len(tok(q, add_special_tokens=False)["input_ids"]) for q in split.suffixes]
    return {
        "prefix_tokens": int(prefix["input_ids"].shape[1]),
        "question_tokens": questions,
        "question_tokens_sum": sum(questions),
        # Leading tokens every question shares: the packed continuation runs them once.
        "question_trunk_tokens": continuation_plan(tok, split.suffixes, "cpu").trunk,
    }


def _measure_policy_layout(
    model: Any, processor: Any, policy: Policy, n_images: int, question: dict[str, Any]
) -> dict[str, Any]:
    """`measure` in the "policy" prompt layout; generation is not re-run (its prompt differs
    only by the listed policy): the ratio to it uses the question layout's generation rate."""
    out = measure(
        model, processor, policy, n_images, pipeline_too=False, layout="policy", generation=False
    )
    out["a_over_c_question_layout"] = (
        out["a_shared_prefix_img_s"] / question["c_generate_json_img_s"]
    )
    out["a_over_question_layout_a"] = (
        out["a_shared_prefix_img_s"] / question["a_shared_prefix_img_s"]
    )
    return out


def compare_layouts(model: Any, processor: Any, policy: Policy, n_images: int) -> dict[str, Any]:
    """Both prompt layouts' shared-prefix scoring in ONE timed loop: image by image, the two
    layouts alternate (question first on even images, policy first on odd ones), each with its
    static prefix computed in an untimed warm-up, as a serving backend keeps it. A change in the
    machine's load then hits both alike, which separate `measure` runs minutes apart do not
    guarantee. Gives each layout's prefill and continuation ms per image (wall and process CPU)
    and the policy layout's speed over the question layout's."""
    items = _images(n_images)
    reuse: dict[str, dict[str, Any]] = {layout: {} for layout in prompts.LAYOUTS}
    for layout in prompts.LAYOUTS:
        score_shared_prefix(model, processor, items[:1], policy, layout=layout, reuse=reuse[layout])
    keys = ("prefix_s", "continuation_s", "prefix_cpu_s", "continuation_cpu_s")
    sums = {layout: dict.fromkeys(keys, 0.0) for layout in prompts.LAYOUTS}
    load_start = [round(v, 2) for v in os.getloadavg()]
    first: list[str] = []
    for i, item in enumerate(items):
        order = prompts.LAYOUTS if i % 2 == 0 else prompts.LAYOUTS[::-1]
        first.append(order[0])
        for layout in order:
            t: dict[str, float] = {}
            score_shared_prefix(
                model, processor, [item], policy, layout=layout, reuse=reuse[layout], timings=t
            )
            for k in keys:
                sums[layout][k] += t[k]
    out: dict[str, Any] = {
        "images": n_images,
        "first_per_image": first,  # the layout timed first on each image
        "load_average_start": load_start,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
    }
    for layout, s in sums.items():
        out[layout] = {
            f"{k.removesuffix('_s')}_ms_per_image": 1e3 * v / n_images for k, v in s.items()
        }
    wall = {k: s["prefix_s"] + s["continuation_s"] for k, s in sums.items()}
    cpu = {k: s["prefix_cpu_s"] + s["continuation_cpu_s"] for k, s in sums.items()}
    out |= {
        "policy_over_question_speed": wall["question"] / wall["policy"],
        "policy_over_question_speed_cpu": cpu["question"] / cpu["policy"],
        # The item part of the prefill is the same ~276 tokens in both layouts (the policy's
        # sits after a longer cached static prefix): this should be near 1.
        "prefill_policy_over_question": sums["policy"]["prefix_s"] / sums["question"]["prefix_s"],
    }
    return out


VISION_SHAPES = {  # InternViT-300M
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}
TEXT_SHAPES = {  # Qwen3-1.7B
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
}


def build_real_shape(
    out_dir: Path, *, vision: dict[str, int] | None = None, text: dict[str, int] | None = None
) -> int:
    """A random-weight InternVL with InternVL3.5-2B's shapes, saved with the tiny tokenizer
    (a 768-token vocab; the model keeps Qwen3's 151,936-row embedding and LM head); returns
    its parameter count, read from the built model (the tied LM head counted once).
    `vision` / `text` override entries of VISION_SHAPES / TEXT_SHAPES (tests build small)."""
    import transformers as tf
    from transformers.initialization import no_init_weights

    from model.tiny import _hf_tokenizer, chatml_template

    template = chatml_template("<IMG_CONTEXT>\n")
    tok = _hf_tokenizer("internvl", template)
    config = tf.InternVLConfig(
        vision_config=tf.InternVLVisionConfig(
            **(VISION_SHAPES | (vision or {})), image_size=448, patch_size=14
        ),
        text_config=tf.Qwen3Config(
            **(TEXT_SHAPES | (text or {})),
            max_position_embeddings=40960,
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        image_token_id=tok.context_image_token_id,
        image_seq_length=256,
        tie_word_embeddings=True,
    )
    # Allocate without the (slow) initialisers, in bf16, then fill: normal(0, 0.02) matrices,
    # unit norms, zero biases. Rotary buffers are computed in __init__ and stay correct.
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with no_init_weights():
            model = tf.InternVLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(old)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 0.02)
            elif name.endswith("weight") or "lambda" in name:
                p.fill_(1.0 if "lambda" not in name else 0.1)
            else:
                p.zero_()
    model.tie_weights()  # like the real checkpoint: the LM head shares the embedding matrix
    processor = tf.InternVLProcessor(
        image_processor=tf.GotOcr2ImageProcessor(
            size={"height": 448, "width": 448}, crop_to_patches=False, max_patches=1
        ),
        tokenizer=tok,
        video_processor=tf.InternVLVideoProcessor(),
        image_seq_length=256,
        chat_template=template,
    )
    model.eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return sum(p.numel() for p in model.parameters())  # parameters() yields a tied one once


_CHILD = """
import json, sys, resource, time
sys.path.insert(0, {root!r})
from model.loading import load_backend
from storage.settings import ModelSettings
def peak_rss():
    # VmHWM: this process's own high-water mark (ru_maxrss is inherited across fork/exec, so
    # a child of a big parent would report the parent's peak).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
def rss_now():
    import gc, os
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
t = time.perf_counter()
b = load_backend(ModelSettings(name={path!r}, quant={quant!r}, device={device!r}))
# weights_bytes_computed: summed from tensor sizes (model.transformers_backend), not measured.
row = {{"weights_bytes_computed": b.info.weight_bytes,
    "load_s": time.perf_counter() - t,
    "peak_rss_bytes": peak_rss(),
    "rss_after_load_bytes": rss_now(),
    "quant": b.info.quant, "dtype": b.info.dtype, "device": b.info.device}}
import torch
if not {device!r}.startswith("cuda"):
    # Loading from safetensors maps the file: bf16 weights count in RSS only once a forward has
    # read them. One shared-prefix scoring of one image (every category) touches every weight,
    # so the process's peak and current RSS after it are what serving that model costs.
    from bench.scoring import _images
    from model.scoring import score_shared_prefix
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY
    t = time.perf_counter()
    score_shared_prefix(b.model, b.processor, _images(1), load_policy(DEFAULT_POLICY),
                        layout=b.layout)
    row["cpu_scoring_s"] = time.perf_counter() - t
    row["peak_rss_after_scoring_bytes"] = peak_rss()
    row["rss_after_scoring_bytes"] = rss_now()
if {device!r}.startswith("cuda") and torch.cuda.is_available():
    # Measured by the CUDA caching allocator: what load left allocated, then, per batch size,
    # the peak during a shared-prefix scoring batch (every category) and images/s (median of
    # {repeats} timed batches after a warm-up batch of the same size).
    import statistics
    from bench.scoring import _images
    from model.scoring import score_shared_prefix
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY
    policy = load_policy(DEFAULT_POLICY)
    torch.cuda.synchronize()
    row["cuda_load_peak_bytes"] = torch.cuda.max_memory_allocated()
    row["cuda_allocated_after_load_bytes"] = torch.cuda.memory_allocated()
    row["cuda_device_name"] = torch.cuda.get_device_name()
    row["cuda_batches"] = {{}}
    for batch in {batches!r}:
        items = _images(batch)
        score_shared_prefix(b.model, b.processor, items, policy, layout=b.layout)  # warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range({repeats}):
            t = time.perf_counter()
            score_shared_prefix(b.model, b.processor, items, policy, layout=b.layout)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        row["cuda_batches"][str(batch)] = {{
            "images": batch,
            "seconds": times,
            "images_per_s": batch / statistics.median(times),
            "scoring_peak_bytes": torch.cuda.max_memory_allocated(),
        }}
print(json.dumps(row))
"""


def load_memory(
    path: Path,
    quant: str,
    device: str = "cpu",
    batches: tuple[int, ...] = (8,),
    repeats: int = 3,
) -> dict[str, Any]:
    """Load the model at `path` in a fresh process: its peak RSS (VmHWM) and, on CUDA,
    torch.cuda.max_memory_allocated after load, then per batch size the peak during a scoring
    batch and images/s."""
    code = _CHILD.format(
        root=str(ROOT),
        path=str(path),
        quant=quant,
        device=device,
        batches=tuple(batches),
        repeats=repeats,
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _memory(big_dir: Path, device: str = "cpu", batches: tuple[int, ...] = (8,)) -> dict[str, Any]:
    """4-bit vs bf16 (and 8-bit on CUDA), each in its own process. On a CPU: peak RSS of the
    load; on CUDA: per batch size, the allocator's peak during a scoring batch and images/s."""
    cuda = device.startswith("cuda")
    quants = ("4bit", "8bit", "none") if cuda else ("4bit", "none")
    mem: dict[str, Any] = {q: load_memory(big_dir, q, device, batches) for q in quants}
    if cuda and all("cuda_batches" in m for m in mem.values()):
        mem["cuda_summary"] = {
            "measured": "per batch size: torch.cuda.max_memory_allocated during shared-prefix "
            "scoring of that many images (11 categories) and images/s (median of 3 batches "
            "after a warm-up), each quantization loaded in a fresh process",
            "device_name": mem["none"].get("cuda_device_name"),
            "batches": {
                str(n): {
                    q: {
                        "images_per_s": round(mem[q]["cuda_batches"][str(n)]["images_per_s"], 2),
                        "scoring_peak_bytes": mem[q]["cuda_batches"][str(n)]["scoring_peak_bytes"],
                    }
                    for q in quants
                }
                for n in batches
            },
        }
    if all("peak_rss_bytes" in m for m in mem.values()):
        q4, bf = mem["4bit"], mem["none"]
        mem["rss_ratio_4bit_over_bf16"] = q4["peak_rss_bytes"] / bf["peak_rss_bytes"]
        mem["weights_computed_ratio_4bit_over_bf16"] = (
            q4["weights_bytes_computed"] / bf["weights_bytes_computed"]
        )
        # Peak RSS includes the bf16 checkpoint pages read while quantizing; RSS after load
        # is what the process keeps while serving.
        mem["rss_after_load_ratio_4bit_over_bf16"] = (
            q4["rss_after_load_bytes"] / bf["rss_after_load_bytes"]
        )
        scored = all("peak_rss_after_scoring_bytes" in m for m in (q4, bf))
        if scored:
            # What serving costs: the peak over load + one scoring pass, and what stays.
            mem["peak_rss_serving_ratio_4bit_over_bf16"] = (
                q4["peak_rss_after_scoring_bytes"] / bf["peak_rss_after_scoring_bytes"]
            )
            mem["rss_after_scoring_ratio_4bit_over_bf16"] = (
                q4["rss_after_scoring_bytes"] / bf["rss_after_scoring_bytes"]
            )
        mem["summary"] = {
            "measured": (
                "peak RSS of the host process (VmHWM of a fresh process that loads the model "
                "on CUDA and scores a batch)"
                if cuda
                else "peak RSS on CPU (VmHWM of a fresh process that loads the model)"
            ),
            "peak_rss_4bit_bytes": q4["peak_rss_bytes"],
            "peak_rss_bf16_bytes": bf["peak_rss_bytes"],
            "peak_rss_ratio_4bit_over_bf16": mem["rss_ratio_4bit_over_bf16"],
            "not_measured": "weights_bytes_computed: summed from tensor sizes",
        }
        if scored:
            mem["summary"] |= {
                "after_one_scoring_pass": "peak RSS (VmHWM) and RSS after load + scoring one "
                "image (every category): the load maps the bf16 file, a forward reads it all",
                "peak_rss_serving_4bit_bytes": q4["peak_rss_after_scoring_bytes"],
                "peak_rss_serving_bf16_bytes": bf["peak_rss_after_scoring_bytes"],
                "peak_rss_serving_ratio_4bit_over_bf16": mem[
                    "peak_rss_serving_ratio_4bit_over_bf16"
                ],
                "rss_after_scoring_4bit_bytes": q4["rss_after_scoring_bytes"],
                "rss_after_scoring_bf16_bytes": bf["rss_after_scoring_bytes"],
                "rss_after_scoring_ratio_4bit_over_bf16": mem[
                    "rss_after_scoring_ratio_4bit_over_bf16"
                ],
            }
    return mem


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-tiny", type=int, default=8)
    parser.add_argument("--images-big", type=int, default=3)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument(
        "--layers",
        default=None,
        metavar="VISION,TEXT",
        help="A reduced real shape: InternVL3.5-2B's widths and prompt, fewer layers (e.g. 3,4; "
        "full: 24,28). Results go under reduced_shape_internvl35_2b; no memory run.",
    )
    parser.add_argument(
        "--skip-memory", action="store_true", help="No 4-bit vs bf16 load (minutes on a CPU)."
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="Only the 4-bit vs bf16 load of the big model; the results file then holds only "
        "that (figures from other runs are not carried over under this run's provenance).",
    )
    parser.add_argument(
        "--results",
        default=None,
        help=f"Results .json file or folder (default: bench/results/{RESULTS_NAME}).",
    )
    parser.add_argument(
        "--memory-device",
        default="cpu",
        help='Device for the 4-bit vs bf16 memory runs: "cpu" (peak RSS) or "cuda" (also '
        "torch.cuda.max_memory_allocated during a scoring batch; 8-bit too).",
    )
    parser.add_argument(
        "--memory-batch",
        default="8",
        metavar="N[,N...]",
        help="On CUDA: the scoring batch sizes measured (images/s and peak memory), e.g. 1,8,32.",
    )
    parser.add_argument(
        "--no-policy-layout",
        action="store_true",
        help='Only the "question" prompt layout (every model so far), not also the "policy" '
        "one (policy in the system turn, short questions; model.prompts).",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's own, one per core). On a CPU shared with other "
        "jobs, 1 avoids threads waiting on each other, which inflates the naive pass most.",
    )
    args = parser.parse_args(argv)
    if args.images_tiny < 1 or args.images_big < 1:
        parser.error("--images-tiny and --images-big must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    layers: tuple[int, int] | None = None
    if args.layers is not None:
        try:
            vision_layers, text_layers = (int(x) for x in args.layers.split(","))
        except ValueError:
            parser.error(f"--layers takes VISION,TEXT (two integers), not {args.layers!r}")
        if min(vision_layers, text_layers) < 1:
            parser.error("--layers: each count must be at least 1")
        layers = (vision_layers, text_layers)
    try:
        batches = tuple(int(x) for x in args.memory_batch.split(",") if x.strip())
    except ValueError:
        parser.error(f"--memory-batch takes sizes like 1,8,32, not {args.memory_batch!r}")
    if not batches or min(batches) < 1:
        parser.error("--memory-batch: each batch size must be at least 1")
    if args.memory_device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(
            f"--memory-device {args.memory_device}: torch sees no CUDA device on this machine"
        )
    out = provenance.results_or_exit(parser, args.results, RESULTS_NAME)
    prov = provenance.start(__file__, argv)
    from model.loading import load_backend
    from model.tiny import make_tiny

    policy = load_policy(DEFAULT_POLICY)
    results: dict[str, Any] = {
        "hardware": prov.summary,
        "device": "cpu",  # every model below is loaded on the CPU, GPU or not
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "generate_tokens": GEN_TOKENS,
    }
    if args.memory_only:
        with tempfile.TemporaryDirectory(prefix="scoring-memory-") as tmp:
            big_dir = Path(tmp) / "internvl35-2b-shapes"
            results["real_shape_parameters"] = build_real_shape(big_dir)
            results["real_shape_memory"] = _memory(big_dir, args.memory_device, batches)
        provenance.write_results(out, results, prov)
        _print_table(results, out)
        return
    with tempfile.TemporaryDirectory(prefix="scoring-bench-") as tmp:
        tiny = make_tiny(Path(tmp) / "tiny-internvl", "internvl")
        # fp32 for the tiny model: at h=64 bf16 matmuls cost more than they save on a CPU.
        b = load_backend(ModelSettings(name=str(tiny), device="cpu", dtype="float32"))
        results["tiny_internvl"] = measure(
            b.model, b.processor, policy, args.images_tiny, pipeline_too=True
        )
        results["tiny_internvl"]["dtype"] = b.info.dtype
        if not args.no_policy_layout:
            results["tiny_internvl"]["policy_layout"] = _measure_policy_layout(
                b.model, b.processor, policy, args.images_tiny, results["tiny_internvl"]
            )
            results["tiny_internvl"]["layouts_same_run"] = compare_layouts(
                b.model, b.processor, policy, args.images_tiny
            )
        print(json.dumps(results["tiny_internvl"], indent=1), flush=True)
        if not args.skip_big:
            big_dir = Path(tmp) / "internvl35-2b-shapes"
            t0 = time.perf_counter()
            if layers is None:
                key = "real_shape_internvl35_2b"
                results["real_shape_parameters"] = build_real_shape(big_dir)
                results["real_shape_build_s"] = time.perf_counter() - t0
            else:
                key = "reduced_shape_internvl35_2b"
                build_real_shape(
                    big_dir,
                    vision={"num_hidden_layers": layers[0]},
                    text={"num_hidden_layers": layers[1]},
                )
            big = load_backend(ModelSettings(name=str(big_dir), device="cpu"))
            results[key] = measure(
                big.model, big.processor, policy, args.images_big, pipeline_too=False
            ) | {"parameters": big.info.parameters, "dtype": big.info.dtype}
            if not args.no_policy_layout:
                results[key]["policy_layout"] = _measure_policy_layout(
                    big.model, big.processor, policy, args.images_big, results[key]
                )
                # At least two images, so each layout runs first once.
                results[key]["layouts_same_run"] = compare_layouts(
                    big.model, big.processor, policy, max(2, args.images_big)
                )
            if layers is not None:
                results[key]["layers"] = {"vision": layers[0], "text": layers[1]}
            print(json.dumps(results[key], indent=1), flush=True)
            from model.loading import evict

            evict()
            del big, b
            if layers is None and not args.skip_memory:
                results["real_shape_memory"] = _memory(big_dir, args.memory_device, batches)
    provenance.write_results(out, results, prov)
    _print_table(results, out)


def _print_split(m: dict[str, Any]) -> None:
    for name in ("repeated", "packed"):
        sp = m.get(f"a_split_{name}")
        if sp:
            print(
                f"  {name:9s} prefix {sp['prefix_ms_per_image']:8.0f} ms/img, continuation "
                f"{sp['continuation_ms_per_image']:8.0f} ms/img "
                f"({sp['continuation_tokens_per_image']:.0f} tokens; prefix "
                f"{m['prefix_tokens']} tokens, {m.get('static_prefix_tokens', 0)} of them static: "
                f"run once, {m.get('static_prefix_once_ms', 0):.0f} ms)"
            )


def _print_table(r: dict[str, Any], out: Path) -> None:
    print(f"\nScoring 11 categories, {r['hardware']}, torch threads {r['threads']}")
    heads = ("(a) shared", "(b) naive", "(c) gen64", "(d) pipe")
    print(f"{'model':28s} " + " ".join(f"{h:>10s}" for h in heads) + f" {'a/b':>6s} {'a/c':>6s}")
    for key in ("tiny_internvl", "reduced_shape_internvl35_2b", "real_shape_internvl35_2b"):
        m = r.get(key)
        if not m:
            continue
        d = m.get("d_decision_pipeline_img_s")
        print(
            f"{key:28s} {m['a_shared_prefix_img_s']:9.2f}/s {m['b_naive_img_s']:8.2f}/s "
            f"{m['c_generate_json_img_s']:8.2f}/s {(f'{d:8.2f}/s' if d else '       -  '):>10s} "
            f"{m['ratio_a_over_b']:5.1f}x {m['ratio_a_over_c']:5.1f}x"
        )
        _print_split(m)
        if "ratio_a0_over_b" in m:
            print(
                f"  older layout (repeated cache, padded): {m['ratio_a0_over_b']:.1f}x naive, "
                f"{m['ratio_a0_over_c']:.1f}x generation"
            )
        pl = m.get("policy_layout")
        if pl:
            print(
                f"  policy prompt layout (policy in the system turn, short questions): "
                f"{pl['a_shared_prefix_img_s']:.3f}/s shared, {pl['b_naive_img_s']:.3f}/s naive: "
                f"{pl['ratio_a_over_b']:.1f}x naive, {pl['a_over_c_question_layout']:.1f}x "
                f"generation, {pl['a_over_question_layout_a']:.2f}x the question layout's speed"
            )
            _print_split(pl)
        same = m.get("layouts_same_run")
        if same:
            print(
                f"  both layouts in one run, alternating ({same['images']} images): policy "
                f"{same['policy_over_question_speed']:.2f}x the question layout's speed "
                f"({same['policy_over_question_speed_cpu']:.2f}x in CPU time); prefill "
                + ", ".join(
                    f"{layout} {same[layout]['prefix_ms_per_image']:.0f} ms "
                    f"(CPU {same[layout]['prefix_cpu_ms_per_image']:.0f})"
                    for layout in prompts.LAYOUTS
                )
                + "; continuation "
                + ", ".join(
                    f"{layout} {same[layout]['continuation_ms_per_image']:.0f} ms"
                    for layout in prompts.LAYOUTS
                )
            )
    mem = r.get("real_shape_memory")
    if mem and "rss_ratio_4bit_over_bf16" in mem:
        print(
            "real-shape load, measured peak RSS on CPU: 4-bit "
            f"{mem['4bit']['peak_rss_bytes'] / 2**30:.2f} GiB, "
            f"bf16 {mem['none']['peak_rss_bytes'] / 2**30:.2f} GiB "
            f"(ratio {mem['rss_ratio_4bit_over_bf16']:.2f}); RSS after load 4-bit "
            f"{mem['4bit']['rss_after_load_bytes'] / 2**30:.2f} GiB, bf16 "
            f"{mem['none']['rss_after_load_bytes'] / 2**30:.2f} GiB "
            f"(ratio {mem['rss_after_load_ratio_4bit_over_bf16']:.2f}); weight bytes computed "
            f"from tensor sizes, not measured: ratio "
            f"{mem['weights_computed_ratio_4bit_over_bf16']:.2f}"
        )
        if "peak_rss_serving_ratio_4bit_over_bf16" in mem:
            print(
                "after scoring one image (the forward reads every mapped weight): peak RSS "
                f"4-bit {mem['4bit']['peak_rss_after_scoring_bytes'] / 2**30:.2f} GiB, bf16 "
                f"{mem['none']['peak_rss_after_scoring_bytes'] / 2**30:.2f} GiB (ratio "
                f"{mem['peak_rss_serving_ratio_4bit_over_bf16']:.2f}); resident 4-bit "
                f"{mem['4bit']['rss_after_scoring_bytes'] / 2**30:.2f} GiB, bf16 "
                f"{mem['none']['rss_after_scoring_bytes'] / 2**30:.2f} GiB"
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
