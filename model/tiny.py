"""Tiny offline VLMs of real architectures, for tests, benchmarks and CI without a model hub.

`make_tiny(out, arch)` builds a model with random weights (deterministic for a seed) and a
byte-level BPE tokenizer trained on the spot on Warden's own prompt text, so "Yes", "No",
JSON punctuation and the category words are single tokens. The result is saved with
`save_pretrained` and reloads with `AutoModelForImageTextToText` / `AutoProcessor`, i.e. through
exactly the same loading code as a real checkpoint.

Run: warden model make-tiny /tmp/tiny-internvl --arch internvl
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from model import prompts

log = logging.getLogger(__name__)

Arch = Literal["internvl", "qwen2vl", "llava", "idefics3"]
ARCHS: tuple[Arch, ...] = ("internvl", "qwen2vl", "llava", "idefics3")

IMAGE_SIZE = 224
VOCAB_SIZE = 768

# Special tokens shared by every tiny tokenizer, then the ones each architecture's processor
# looks up. Reserving them all in the BPE trainer keeps the vocabulary (and the embedding
# matrix) fixed: a processor that adds a missing token would grow the vocab past the model.
_BASE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_ARCH_SPECIALS: dict[str, list[str]] = {
    "internvl": ["<img>", "</img>", "<IMG_CONTEXT>", "<video>"],
    "qwen2vl": ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"],
    "llava": ["<image>"],
    "idefics3": [
        "<image>",
        "<fake_token_around_image>",
        "<global-img>",
        "<end_of_utterance>",
        *[f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)],
    ],
}
# What the chat template prints for an image block; the processor expands it to image tokens.
_IMAGE_MARKUP = {
    "internvl": "<IMG_CONTEXT>\n",
    "qwen2vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "llava": "<image>\n",
    "idefics3": "<image>\n",
}


def chatml_template(image_markup: str) -> str:
    """A ChatML chat template (Qwen style) accepting string or multimodal-list content."""
    return (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
        "{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}" + image_markup + "{% elif c['type'] == 'text' %}"
        "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


def _corpus() -> list[str]:
    """Warden's own prompt text, answers and JSON, so the tokenizer covers what it will see."""
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY

    policy = load_policy(DEFAULT_POLICY)
    lines = [prompts.SYSTEM_PROMPT, prompts.rationale_question(policy)]
    lines += [prompts.category_question(c) for c in policy.categories]
    lines += [c.id for c in policy.categories] + [c.title for c in policy.categories]
    lines += [
        prompts.ANSWER_YES,
        prompts.ANSWER_NO,
        f" {prompts.ANSWER_YES}",
        f" {prompts.ANSWER_NO}",
        f"{prompts.ANSWER_YES}.",
        f"{prompts.ANSWER_NO}.",
        '{"categories": [], "rationale": "nothing in the image violates the policy"}',
        '{"categories": ["scam_fraud", "illegal_ads"], "rationale": "a fake giveaway"}',
        prompts.format_ocr_hint("WIN A FREE PHONE call 555 0100 now"),
        prompts.format_text_hint("look at this, friends!") or "",
        "assistant user system 0123456789 { } [ ] : , \" ' . ! ? - _ @ # $ % & * ( ) / \\",
    ]
    return lines * 8


def _train_tokenizer(
    specials: list[str],
    extra_corpus: Sequence[str] = (),
    vocab_size: int = VOCAB_SIZE,
    lowercase: bool = False,
    split_digits: bool = False,
) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if split_digits:  # one token per digit, as Qwen's tokenizers do ("148" -> 1, 4, 8)
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), tok.pre_tokenizer]
        )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*_corpus(), *extra_corpus], trainer=trainer)
    for word in (prompts.ANSWER_YES, prompts.ANSWER_NO, f" {prompts.ANSWER_YES}"):
        if len(tok.encode(word).ids) != 1:
            raise RuntimeError(f"tiny tokenizer split {word!r}; the corpus must contain it")
    return tok


def _hf_tokenizer(
    arch: Arch,
    template: str,
    extra_corpus: Sequence[str] = (),
    vocab_size: int = VOCAB_SIZE,
    lowercase: bool = False,
    split_digits: bool = False,
) -> Any:
    from transformers import PreTrainedTokenizerFast

    specials = _BASE_SPECIALS + _ARCH_SPECIALS[arch]
    extra: dict[str, str] = {}
    if arch == "internvl":
        # InternVLProcessor reads these named attributes off the tokenizer.
        extra = {
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        }
    elif arch == "qwen2vl":
        extra = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"}
    elif arch == "llava":
        extra = {"image_token": "<image>"}
    return PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(
            specials, extra_corpus, vocab_size, lowercase, split_digits
        ),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        extra_special_tokens=extra,
        chat_template=template,
    )


def _text_kwargs(tok: Any) -> dict[str, Any]:
    # Qwen3-like decoder: 2 layers, GQA (4 heads, 2 kv heads), head_dim 16.
    return dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=None,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def _build(arch: Arch, tok: Any, template: str) -> tuple[Any, Any]:
    """(model, processor) for one architecture, random weights from the current torch seed."""
    import transformers as tf

    text = _text_kwargs(tok)
    if arch == "internvl":
        config = tf.InternVLConfig(
            vision_config=tf.InternVLVisionConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                image_size=IMAGE_SIZE,
                patch_size=14,
            ),
            text_config=tf.Qwen3Config(head_dim=16, tie_word_embeddings=True, **text),
            image_token_id=tok.context_image_token_id,
            image_seq_length=64,  # (224/14)^2 * 0.5^2 after pixel shuffle
            tie_word_embeddings=True,
        )
        model = tf.InternVLForConditionalGeneration(config)
        processor = tf.InternVLProcessor(
            image_processor=tf.GotOcr2ImageProcessor(
                size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                crop_to_patches=False,
                max_patches=1,
            ),
            tokenizer=tok,
            video_processor=tf.InternVLVideoProcessor(),
            image_seq_length=64,
            chat_template=template,
        )
    elif arch == "qwen2vl":
        config = tf.Qwen2VLConfig(
            vision_config=dict(
                depth=2,
                embed_dim=32,
                hidden_size=64,
                num_heads=2,
                mlp_ratio=2,
                patch_size=14,
                spatial_merge_size=2,
                temporal_patch_size=2,
            ),
            text_config=dict(
                rope_parameters={
                    "rope_type": "default",
                    "rope_theta": 10000.0,
                    "mrope_section": [2, 3, 3],
                },
                **text,
            ),
            image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
            video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
            vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
            vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
        )
        model = tf.Qwen2VLForConditionalGeneration(config)
        pixels = IMAGE_SIZE * IMAGE_SIZE
        processor = tf.Qwen2VLProcessor(
            image_processor=tf.Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels),
            tokenizer=tok,
            video_processor=tf.Qwen2VLVideoProcessor(),
            chat_template=template,
        )
    elif arch == "llava":
        config = tf.LlavaConfig(
            vision_config=tf.CLIPVisionConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=IMAGE_SIZE,
                patch_size=32,
                projection_dim=32,
            ),
            text_config=tf.Qwen3Config(head_dim=16, **text),
            image_token_index=tok.convert_tokens_to_ids("<image>"),
            image_seq_length=49,  # (224/32)^2, CLS dropped by the "default" strategy
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
        )
        model = tf.LlavaForConditionalGeneration(config)
        processor = tf.LlavaProcessor(
            image_processor=tf.CLIPImageProcessor(
                size={"shortest_edge": IMAGE_SIZE},
                crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            ),
            tokenizer=tok,
            patch_size=32,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
            chat_template=template,
        )
    elif arch == "idefics3":
        config = tf.Idefics3Config(
            vision_config=tf.Idefics3VisionConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=IMAGE_SIZE,
                patch_size=14,
            ),
            text_config=tf.LlamaConfig(head_dim=16, **text),
            image_token_id=tok.convert_tokens_to_ids("<image>"),
            scale_factor=2,
        )
        model = tf.Idefics3ForConditionalGeneration(config)
        processor = tf.Idefics3Processor(
            image_processor=tf.Idefics3ImageProcessor(
                do_image_splitting=False,
                size={"longest_edge": IMAGE_SIZE},
                max_image_size={"longest_edge": IMAGE_SIZE},
            ),
            tokenizer=tok,
            image_seq_len=64,  # (224/14)^2 / 2^2
            chat_template=template,
        )
    else:  # pragma: no cover - Literal guards callers
        raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return model, processor


def make_tiny(
    out: Path,
    arch: Arch = "internvl",
    seed: int = 0,
    *,
    extra_corpus: Sequence[str] = (),
    vocab_size: int = VOCAB_SIZE,
    lowercase: bool = False,
    split_digits: bool = False,
) -> Path:
    """Build and save a tiny random-weight VLM of `arch` into `out`; returns `out`.

    The byte-level BPE tokenizer is trained on Warden's prompt text plus `extra_corpus` (the
    demo model adds SynthMod's phrases, so content words become tokens instead of bytes)."""
    import torch

    if arch not in ARCHS:
        from storage.errors import WardenError

        raise WardenError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    template = chatml_template(_IMAGE_MARKUP[arch])
    tok = _hf_tokenizer(arch, template, extra_corpus, vocab_size, lowercase, split_digits)
    # fork_rng: a seeded build must not change the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, processor = _build(arch, tok, template)
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("tiny %s (%d params, vocab %d) saved to %s", arch, n_params, len(tok), out)
    return out
