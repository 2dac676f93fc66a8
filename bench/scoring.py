"""Benchmark: shared-prefix category scoring against naive scoring and JSON generation.

One run measures images/s for (a) shared-prefix batched scoring (`model.scoring`), (b) one full
sequence per category, (c) generating a 64-token JSON verdict per image (the LlavaGuard way),
and (d) transformers' own `pipeline("decision")`, with the 11 default policy categories, on the
tiny InternVL and on a random-weight model with InternVL3.5-2B's real shapes (InternViT-300M +
Qwen3-1.7B, 448 px, 256 image tokens) in bf16. It also loads the real-shape model 4-bit and bf16
through `model.loading` in separate processes and measures each one's peak RSS on the CPU
(the figure the summary reports); weight bytes summed from tensor sizes are kept beside it as
`weights_bytes_computed`, a computation, not a measurement.

Run: .venv/bin/python bench/scoring.py [--images-tiny 8] [--images-big 3] [--skip-big]
     [--layers VISION,TEXT] [--skip-memory] [--memory-only] [--results PATH]
Each shared-prefix figure is split into prefix and continuation ms per image, beside the older
layout (a0: the KV cache repeated per category, padded questions) for before/after.
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
    model: Any, processor: Any, policy: Policy, n_images: int, *, pipeline_too: bool
) -> dict[str, Any]:
    items = _images(n_images)
    # Warm-up (first-call allocations, kernels) on one image, not timed.
    score_shared_prefix(model, processor, items[:1], policy)
    score_shared_prefix(model, processor, items[:1], policy, packed=False)
    out: dict[str, Any] = {"images": n_images, "categories": len(policy.categories)}
    out |= _prompt_tokens(processor, policy, items[0])
    step = 4
    parts: dict[str, dict[str, float]] = {}

    def shared(packed: bool) -> None:
        split = parts.setdefault("packed" if packed else "repeated", {})
        for i in range(0, len(items), step):
            t: dict[str, float] = {}
            score_shared_prefix(
                model, processor, items[i : i + step], policy, packed=packed, timings=t
            )
            for k, v in t.items():
                split[k] = split.get(k, 0.0) + v

    # (a0) the older layout (cache repeated per category, padded questions), for before/after.
    t_a0 = _timed(lambda: shared(False))
    t_a = _timed(lambda: shared(True))
    for name, split in parts.items():
        out[f"a_split_{name}"] = {
            "prefix_ms_per_image": 1e3 * split["prefix_s"] / n_images,
            "continuation_ms_per_image": 1e3 * split["continuation_s"] / n_images,
            "continuation_tokens_per_image": split["continuation_tokens"] / n_images,
        }
    out["a0_shared_prefix_repeated_img_s"] = n_images / t_a0
    t_b = _timed(lambda: [score_naive(model, processor, it, policy) for it in items])
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
            )
            for it in items
        ]
    )
    out |= {
        "a_shared_prefix_img_s": n_images / t_a,
        "b_naive_img_s": n_images / t_b,
        "c_generate_json_img_s": n_images / t_c,
        "ratio_a_over_b": t_b / t_a,
        "ratio_a_over_c": t_c / t_a,
        "ratio_a0_over_b": t_b / t_a0,
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


def _prompt_tokens(processor: Any, policy: Policy, item: ScoringInput) -> dict[str, Any]:
    """Token counts of one scoring prompt: shared prefix (image tokens expanded) and each
    category's question (what the continuation runs)."""
    from model.scoring import render_prompt_parts

    tok = processor.tokenizer
    split = render_prompt_parts(processor, policy, text=item.text, ocr_text=item.ocr_text)
    prefix = processor(text=[split.prefix], images=[[item.image]], return_tensors="pt")
    questions = [len(tok(q, add_special_tokens=False)["input_ids"]) for q in split.suffixes]
    return {
        "prefix_tokens": int(prefix["input_ids"].shape[1]),
        "question_tokens": questions,
        "question_tokens_sum": sum(questions),
    }


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
b = load_backend(ModelSettings(name={path!r}, quant={quant!r}, device="cpu"))
# weights_bytes_computed: summed from tensor sizes (model.transformers_backend), not measured.
print(json.dumps({{"weights_bytes_computed": b.info.weight_bytes,
    "load_s": time.perf_counter() - t,
    "peak_rss_bytes": peak_rss(),
    "rss_after_load_bytes": rss_now(),
    "quant": b.info.quant, "dtype": b.info.dtype}}))
"""


def load_memory(path: Path, quant: str) -> dict[str, Any]:
    code = _CHILD.format(root=str(ROOT), path=str(path), quant=quant)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _memory(big_dir: Path) -> dict[str, Any]:
    mem: dict[str, Any] = {q: load_memory(big_dir, q) for q in ("4bit", "none")}
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
        mem["summary"] = {
            "measured": "peak RSS on CPU (VmHWM of a fresh process that loads the model)",
            "peak_rss_4bit_bytes": q4["peak_rss_bytes"],
            "peak_rss_bf16_bytes": bf["peak_rss_bytes"],
            "peak_rss_ratio_4bit_over_bf16": mem["rss_ratio_4bit_over_bf16"],
            "not_measured": "weights_bytes_computed: summed from tensor sizes",
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
    args = parser.parse_args(argv)
    if args.images_tiny < 1 or args.images_big < 1:
        parser.error("--images-tiny and --images-big must be at least 1")
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
        out = provenance.resolve_results(args.results, RESULTS_NAME)
    except ValueError as exc:
        parser.error(str(exc))
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
            results["real_shape_memory"] = _memory(big_dir)
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
            if layers is not None:
                results[key]["layers"] = {"vision": layers[0], "text": layers[1]}
            print(json.dumps(results[key], indent=1), flush=True)
            from model.loading import evict

            evict()
            del big, b
            if layers is None and not args.skip_memory:
                results["real_shape_memory"] = _memory(big_dir)
    provenance.write_results(out, results, prov)
    _print_table(results, out)


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
        for name in ("repeated", "packed"):
            sp = m.get(f"a_split_{name}")
            if sp:
                print(
                    f"  {name:9s} prefix {sp['prefix_ms_per_image']:8.0f} ms/img, continuation "
                    f"{sp['continuation_ms_per_image']:8.0f} ms/img "
                    f"({sp['continuation_tokens_per_image']:.0f} tokens)"
                )
        if "ratio_a0_over_b" in m:
            print(
                f"  older layout (repeated cache, padded): {m['ratio_a0_over_b']:.1f}x naive, "
                f"{m['ratio_a0_over_c']:.1f}x generation"
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
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
