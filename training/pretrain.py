"""Pre- and mid-training stages, and the small demo checkpoint built with them.

Stages (after the Xuanwu recipe): `pre` aligns the projector with the encoders frozen; `mid`
trains on domain data mixed with general data. Both use the scorer's own objective: for every
image, each policy category's yes/no question (`model.prompts`), answered "Yes"/"No", read at
the same position `model.scoring` reads it. The loop reuses the scorer's shared prefix: the
image + text + OCR hint runs once per image, its KV cache is repeated for the N category
questions, and the loss is cross-entropy on the N answer tokens. This is a plain PyTorch loop
(TRL's SFTTrainer would run the image prefix once per question, N times the work on this CPU);
post-training (`training.posttrain`) uses TRL + PEFT.

The demo model (`warden train demo`) is a small InternVL of the real architecture (a 2-layer
Qwen3 decoder of width 256; an uncased BPE over the prompts, SynthMod's training phrases and an
English word list, its embeddings started from all-MiniLM-L6-v2 word vectors: `training.lexicon`)
trained on SynthMod with each image's rendered text, with ~5% character noise and ~10% of
words dropped, as the OCR hint in exactly the place the backend puts RapidOCR's text. A model
this small cannot learn to read pixels on a CPU (FACTS.md): it is a classifier over the OCR
text and knows nothing about text-free images beyond "no text, no violation". Because its
language model starts from random weights, its `pre` stage trains the language model too (a
real base keeps it frozen).

A last `benign` stage (`training.demo_refine`) trains on harmless text from Faker, Mimesis and
wordfreq with SynthMod replayed, and calibrates per-category thresholds on validation for a
target benign flag rate (`thresholds.json` beside the weights).

Run: warden train demo --out assets/model/demo --seed 0
     warden train pre --base DIR --manifest synth/manifest.jsonl --out DIR
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from storage.errors import WardenError
from storage.policy import Policy
from training.evaluate import EvalRow, read_manifest
from training.synth_text import is_cjk

log = logging.getLogger(__name__)

# Where `warden train demo` keeps its evaluation sets by default (bench/loop.py reads them).
DEFAULT_DEMO_WORK = Path(tempfile.gettempdir()) / "warden-demo-work"


@dataclass(frozen=True)
class DemoArch:
    """Shapes of the demo InternVL: 16 image tokens (patch 28, pixel shuffle 0.5) and a 2-layer
    Qwen3 decoder of width 256 (~0.6 s per 16-image step on 2 CPU cores; width 128 was 0.4 s
    and learned the training phrases as well but carried over to new wording less). Pixels
    carry no label in SynthMod beyond "photo or text", so the vision side is kept small."""

    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 2
    patch_size: int = 28
    image_size: int = 224
    text_hidden: int = 256
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 512
    # Byte-level BPE over the prompts, SynthMod's training phrases and an English word list
    # (`training.lexicon`): content words ("cocaine", "heroin", "giveaway") are single tokens.
    # With the 768-token prompt-only vocabulary they were byte runs, and a 2-layer model left
    # drugs and harassment at chance.
    vocab_size: int = 24576
    # Uncased, like the encoder the word vectors come from: OCR of a banner is often capitals.
    lowercase: bool = True
    # Word knowledge from all-MiniLM-L6-v2 (`training.lexicon`): its English word list joins the
    # tokenizer's corpus and the embeddings start as its vectors of each token's text.
    word_vectors: bool = True
    # One token per digit (Qwen's tokenizers do the same); GPT-2-style pre-tokenizing keeps
    # digit runs whole ("148"), so a digit written for a letter looks like part of a number.
    split_digits: bool = False
    # SynthMod's phrases join the tokenizer's corpus, so their words become tokens. False: only
    # their Hangul/Hanzi characters do (one token each), and Latin content is read in the
    # pieces the prompt's own words leave: a reader of characters, whose prompt stays short.
    phrase_tokens: bool = True

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2 // 4


@dataclass(frozen=True)
class StageConfig:
    """One training stage (pre or mid); recipes in training/recipes/ fill these from YAML."""

    stage: str = "mid"
    # Parameter-name prefixes that train; all others stay frozen.
    train_modules: tuple[str, ...] = ("model.multi_modal_projector",)
    lr: float = 2e-3
    weight_decay: float = 0.01
    batch_size: int = 16
    max_steps: int | None = None
    max_seconds: float | None = None
    epochs: float | None = None
    warmup_steps: int = 30
    ocr_noise: float = 0.05  # per-character corruption rate applied to the OCR hint
    # Share of words dropped from the OCR hint (texts of 4+ words): the label has to be read
    # from several cues, not one template-specific token, which is what carries a classifier
    # over to phrasings it has never seen.
    word_dropout: float = 0.0
    # BPE-dropout (Provilkov et al., 2020): each merge is skipped with this probability while
    # tokenizing training prompts, so a word is also seen as sub-words and characters. The
    # model learns to compose pieces, which is what reading misspelt, OCR-damaged or
    # leetspeak text needs. Serving always tokenizes deterministically.
    bpe_dropout: float = 0.0
    # Share of the hint's Latin words cut into pieces at random inner points, each piece
    # tokenized on its own ("cocaine" -> "coc" + "a" + "ine"): the model learns to read a word
    # from its fragments, which is what OCR damage and leetspeak leave of it ("c0c41n3" is
    # "c", "0", "c", "41", "n", "3" to a BPE). Unlike BPE-dropout it leaves the other words
    # whole. Digits and symbols never appear as letters here: learning that "4" is an "a" is
    # left to the data (the loop benchmark's withheld variant).
    split_words: float = 0.0
    yes_weight: float = 1.0  # weight of "Yes" answers in the loss
    # Weight of a teacher loss (0: off). A model trained from scratch knows harm only by the
    # phrasings it trained on, while a pre-trained sentence encoder given the same texts
    # reaches other people's paraphrases (bench/demo_benign.py --encoder-baseline). So the
    # state every answer reads the prompt through (the input of the last decoder layer at the
    # prompt's last position) is pulled, through a linear map trained alongside and then
    # dropped, towards all-MiniLM-L6-v2's sentence vector of the OCR hint (1 - cosine).
    distill: float = 0.0
    questions_per_image: int = 5  # all positives + random negatives (see pick_questions)
    # autocast: ~2x faster on CPUs with AMX / AVX512-bf16; off on a CPU without hardware bf16
    # (model.loading.cpu_bf16_fast), where emulated bf16 is far slower than float32
    bf16: bool = True
    seed: int = 0
    log_every: int = 25


@dataclass(frozen=True)
class StageResult:
    stage: str
    steps: int
    samples: int
    seconds: float
    first_loss: float
    last_loss: float
    trainable_params: int
    losses: list[float] = field(default_factory=list)
    # With a teacher (`StageConfig.distill`): the mean cosine between the student's mapped
    # prompt state and the teacher's vector over the first and last steps; the loss above
    # is the answers' loss plus distill * (1 - this).
    first_teacher_cos: float | None = None
    last_teacher_cos: float | None = None


# --- OCR-like noise -------------------------------------------------------------------------

_NOISE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,'-"
# What RapidOCR confuses on renders (FACTS: l->I, 7->1) plus the usual suspects.
_CONFUSIONS = {"l": "I", "I": "l", "7": "1", "0": "O", "O": "0", "1": "l", "5": "S", "rn": "m"}


def ocr_noise(text: str, rate: float, rng: random.Random) -> str:
    """Corrupt ~`rate` of the characters: look-alike swaps, substitutions, drops, insertions."""
    if rate <= 0 or not text:
        return text
    out: list[str] = []
    for ch in text:
        r = rng.random()
        if r >= rate:
            out.append(ch)
            continue
        op = rng.random()
        if op < 0.4 and ch in _CONFUSIONS:
            out.append(_CONFUSIONS[ch])
        elif op < 0.65:
            out.append(rng.choice(_NOISE_CHARS))
        elif op < 0.85:
            continue  # dropped
        else:
            out.append(ch + rng.choice(_NOISE_CHARS))
    return "".join(out)


# Marks a cut inside a word in an OCR hint during training. A private-use character: no OCR
# text or prompt holds one, and the prompt builder keeps it (it is not a special-token string);
# `shared_prefix_loss` swaps it for the pad token, which splits BPE pre-tokens, and then drops
# that token from the ids, so the pieces reach the model side by side.
SPLIT_MARK = "\ue000"
_LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


def split_words(text: str, rate: float, rng: random.Random, cut: float = 0.5) -> str:
    """Cut each Latin word of 3+ letters with probability `rate`: every inner gap is a cut with
    probability `cut` (at least one), marked with SPLIT_MARK."""
    if rate <= 0 or not text:
        return text

    def cut_word(m: re.Match[str]) -> str:
        word = m.group(0)
        if rng.random() >= rate:
            return word
        gaps = [i for i in range(1, len(word)) if rng.random() < cut] or [
            rng.randrange(1, len(word))
        ]
        pieces, start = [], 0
        for g in gaps:
            pieces.append(word[start:g])
            start = g
        pieces.append(word[start:])
        return SPLIT_MARK.join(pieces)

    return _LATIN_WORD.sub(cut_word, text)


def drop_split_marks(enc: Any, pad_id: int) -> Any:
    """Remove the pad tokens that stand for SPLIT_MARKs inside the real (unmasked) positions of
    a left-padded batch and left-pad it again. Every [B, L] tensor of `enc` (ids, mask, token
    types) loses the same positions."""
    import torch

    ids, mask = enc["input_ids"], enc["attention_mask"]
    keep = mask.bool() & (ids != pad_id)
    if bool((keep == mask.bool()).all()):
        return enc
    lengths = keep.sum(-1)
    width = int(lengths.max())
    keys = [k for k, v in enc.items() if torch.is_tensor(v) and v.shape == ids.shape]
    for k in keys:
        old = enc[k]
        fill = pad_id if k == "input_ids" else 0
        new = torch.full((ids.shape[0], width), fill, dtype=old.dtype, device=old.device)
        for b in range(ids.shape[0]):
            row = old[b][keep[b]]
            new[b, width - row.shape[0] :] = row
        enc[k] = new
    return enc


def word_dropout(text: str, rate: float, rng: random.Random) -> str:
    """Drop each word with probability `rate`; texts under 4 words, and at least one word of
    the rest, are kept (a Chinese or Korean line without spaces is left whole)."""
    words = text.split(" ")
    if rate <= 0 or len(words) < 4:
        return text
    kept = [w for w in words if rng.random() >= rate]
    return " ".join(kept or [rng.choice(words)])


# --- the demo architecture ------------------------------------------------------------------


def tokenizer_corpus(heldout_family_share: float, fills: int = 4) -> list[str]:
    """SynthMod's phrases (training families only, so held-out families stay unseen), each
    template filled `fills` times in its own language, plus the captions and post texts."""
    from training.synth_phrases import CAPTION_TEMPLATES, POST_TEXTS, TEMPLATES, fill_template

    rng = random.Random(0)
    lines = [
        fill_template(t.text, t.lang, rng)
        for t in (*TEMPLATES, *CAPTION_TEMPLATES)
        if not is_heldout_family(t.family, heldout_family_share)
        for _ in range(fills)
    ]
    return lines + list(POST_TEXTS)


def build_demo_model(
    out: Path,
    arch: DemoArch | None = None,
    seed: int = 0,
    *,
    heldout_family_share: float = 0.0,
) -> Path:
    """A random-weight demo InternVL with `model.tiny`'s chat template, a tokenizer that also
    knows SynthMod's and common English words, and (with `arch.word_vectors`) embeddings that
    start from a sentence encoder's vectors (`training.lexicon`)."""
    import torch
    import transformers as tf

    from model.tiny import make_tiny

    arch = arch or DemoArch()
    out = Path(out)
    corpus = tokenizer_corpus(heldout_family_share)
    if not arch.phrase_tokens:
        chars = sorted({ch for line in corpus for ch in line if is_cjk(ch)})
        corpus = [ch for ch in chars for _ in range(8)]  # frequent enough to be merged
    if arch.word_vectors:
        from training.lexicon import word_corpus

        corpus += word_corpus()
    with tempfile.TemporaryDirectory() as tmp:
        # tokenizer, template, processor classes
        make_tiny(
            Path(tmp),
            "internvl",
            seed=seed,
            extra_corpus=corpus,
            vocab_size=arch.vocab_size,
            lowercase=arch.lowercase,
            split_digits=arch.split_digits,
        )
        processor = tf.AutoProcessor.from_pretrained(tmp)
    tok = processor.tokenizer
    config = tf.InternVLConfig(
        vision_config=tf.InternVLVisionConfig(
            hidden_size=arch.vision_hidden,
            num_hidden_layers=arch.vision_layers,
            num_attention_heads=arch.vision_heads,
            intermediate_size=arch.vision_hidden * 2,
            image_size=arch.image_size,
            patch_size=arch.patch_size,
        ),
        text_config=tf.Qwen3Config(
            vocab_size=len(tok),
            hidden_size=arch.text_hidden,
            intermediate_size=arch.text_intermediate,
            num_hidden_layers=arch.text_layers,
            num_attention_heads=arch.text_heads,
            num_key_value_heads=arch.text_kv_heads,
            head_dim=arch.text_hidden // arch.text_heads,
            max_position_embeddings=4096,
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        image_token_id=tok.context_image_token_id,
        image_seq_length=arch.image_tokens,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = tf.InternVLForConditionalGeneration(config)
        if arch.word_vectors:
            from training.lexicon import embedding_init

            std = config.text_config.initializer_range
            with torch.no_grad():
                model.get_input_embeddings().weight.copy_(
                    embedding_init(tok, arch.text_hidden, std=std, seed=seed)
                )
    processor.image_seq_length = arch.image_tokens
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# --- samples --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    image: Any  # PIL image (RGB)
    labels: tuple[str, ...]
    ocr_text: str
    text: str | None = None


def load_samples(rows: Sequence[EvalRow], policy: Policy) -> list[Sample]:
    """Decode manifest rows; restricted categories never enter training."""
    from PIL import Image

    restricted = policy.restricted_ids
    out = []
    for r in rows:
        if restricted.intersection(r.labels):
            continue
        with Image.open(r.path) as im:
            image = im.convert("RGB")
        out.append(Sample(image, tuple(r.labels), r.ocr_text or "", r.text))
    return out


# --- the training loop ----------------------------------------------------------------------


def _set_trainable(model: Any, prefixes: Sequence[str]) -> int:
    n = 0
    for name, p in model.named_parameters():
        p.requires_grad = any(name.startswith(pre) for pre in prefixes)
        n += p.numel() if p.requires_grad else 0
    if n == 0:
        names = sorted({".".join(k.split(".")[:2]) for k, _ in model.named_parameters()})
        raise WardenError(f"no parameter matches {list(prefixes)}; modules: {', '.join(names)}")
    return n


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, looked up once (find_library runs ldconfig), or None elsewhere."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError, TypeError):  # not glibc
        return None


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS. Every batch has its own sequence lengths,
    BPE-dropout more so, and glibc keeps the freed blocks of each shape: measured +2.1 GB RSS
    over 300 steps on this CPU without trimming, +1.7 GB with it."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@contextmanager
def bpe_dropout(tokenizer: Any, p: float) -> Iterator[None]:
    """Tokenize with BPE-dropout `p` inside the block; deterministic again on any exit, so the
    tokenizer is never saved or served with dropout. p = 0 leaves the tokenizer alone."""
    if p <= 0:
        yield
        return
    model = tokenizer.backend_tokenizer.model
    if type(model).__name__ != "BPE":
        raise WardenError(f"bpe_dropout needs a BPE tokenizer, not {type(model).__name__}")
    model.dropout = p
    try:
        yield
    finally:
        model.dropout = None


def pick_questions(labels: Sequence[str], policy: Policy, k: int, rng: random.Random) -> list[int]:
    """k category indices for one image: every positive one, then random negatives.

    Asking all N questions of every image costs N suffix passes; k < N keeps every "Yes" and a
    random share of the "No"s, which also evens out the Yes/No balance.
    """
    n = len(policy.categories)
    if k >= n:
        return list(range(n))
    pos = [i for i, c in enumerate(policy.categories) if c.id in labels][:k]
    neg = [i for i in range(n) if i not in pos]
    return pos + rng.sample(neg, k - len(pos))


def shared_prefix_loss(
    model: Any,
    processor: Any,
    batch: Sequence[Sample],
    policy: Policy,
    ocr_texts: Sequence[str],
    yes_no: tuple[int, int],
    yes_weight: float,
    questions: Sequence[Sequence[int]] | None = None,
    teacher: tuple[Any, Any, float] | None = None,
    stats: dict[str, float] | None = None,
) -> Any:
    """Weighted cross-entropy of the category answers of B images, in one prefix pass and one
    suffix pass (the scorer's computation, with gradients). `questions[b]` lists which
    categories image b is asked (same count per image; default all). SPLIT_MARKs in the OCR
    texts become token boundaries (`split_words`).

    `teacher` = (head, targets [B, E], weight): adds weight * (1 - cosine) between
    head(input of the last decoder layer at each prompt's last position) and targets
    (`StageConfig.distill`); with `stats`, the batch's mean cosine goes to
    stats["teacher_cos"]."""
    import torch

    from model import scoring

    core = scoring.core_model(model)
    parts = [
        scoring.render_prompt_parts(processor, policy, text=s.text, ocr_text=o)
        for s, o in zip(batch, ocr_texts, strict=True)
    ]
    tok = processor.tokenizer
    marked = any(SPLIT_MARK in o for o in ocr_texts)
    if marked:
        parts = [replace(p, prefix=p.prefix.replace(SPLIT_MARK, tok.pad_token)) for p in parts]
    n_img = len(batch)
    if questions is None:
        questions = [list(range(len(policy.categories)))] * n_img
    k = len(questions[0])
    # The scorer's own preprocessing (image processor + tokenizer), run again for every batch:
    # ~15 ms for 16 images, against a ~600 ms step; caching pixels held 7 GB at 12,000 images.
    enc = scoring._processor_inputs(
        processor, [p.prefix for p in parts], [s.image for s in batch], model.device, model.dtype
    )
    if marked:
        enc = drop_split_marks(enc, tok.pad_token_id)
    prefix_pos, next_pos = scoring._prefix_positions(core, enc)
    out = core(
        **enc, position_ids=prefix_pos, use_cache=True, output_hidden_states=teacher is not None
    )
    cache = scoring.kv_cache(out)
    cache.batch_repeat_interleave(k)  # [B, H, Lp, Dh] -> [B*k, H, Lp, Dh], image-major
    suffixes = [parts[b].suffixes[q] for b in range(n_img) for q in questions[b]]
    ids, suf_mask, suf_len = scoring._suffix_batch(processor.tokenizer, suffixes, model.device)
    width = ids.shape[1]  # ids: [B*k, Ls]
    attn = torch.cat([enc["attention_mask"].repeat_interleave(k, 0), suf_mask], dim=1)
    pos = next_pos.repeat_interleave(k)[:, None] + torch.arange(width, device=ids.device)[None, :]
    hidden = core(
        input_ids=ids, attention_mask=attn, position_ids=pos, **scoring.with_cache(core, cache)
    ).last_hidden_state  # [B*k, Ls, D]
    picked = hidden[torch.arange(hidden.shape[0], device=ids.device), suf_len - 1]  # [B*k, D]
    logits = model.get_output_embeddings()(picked).float()  # [B*k, V]
    truth = torch.tensor(
        [policy.categories[q].id in batch[b].labels for b in range(n_img) for q in questions[b]],
        dtype=torch.bool,
        device=logits.device,
    )
    target = torch.where(truth, yes_no[0], yes_no[1])
    weight = torch.where(truth, yes_weight, 1.0)
    loss = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    loss = (loss * weight).sum() / weight.sum()
    if teacher is not None:
        head, targets, w = teacher
        mask = enc["attention_mask"]  # [B, Lp]; padding on either side
        last = mask.shape[1] - 1 - mask.flip(1).float().argmax(1)  # [B]
        # hidden_states[-2]: what the last layer reads, so what the answers attend to.
        state = out.hidden_states[-2][torch.arange(n_img, device=last.device), last]  # [B, D]
        cos = torch.nn.functional.cosine_similarity(head(state.float()), targets, dim=-1)
        loss = loss + w * (1 - cos).mean()
        if stats is not None:
            stats["teacher_cos"] = float(cos.detach().mean())
    return loss


def train_stage(
    model_dir: Path,
    samples: Sequence[Sample],
    policy: Policy,
    config: StageConfig,
    out: Path,
    *,
    progress: Callable[[int, float], None] | None = None,
) -> StageResult:
    """Train `model_dir` on `samples` per `config` and save the full model into `out`."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from model import loading, scoring

    if not samples:
        raise WardenError("no training samples")
    if config.max_steps is None and config.max_seconds is None and config.epochs is None:
        raise WardenError("a stage needs max_steps, max_seconds or epochs")
    torch.manual_seed(config.seed)
    torch.set_flush_denormal(True)  # denormals slow CPU training down as weights settle
    rng = random.Random(config.seed)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.train()
    autocast = config.bf16 and (model.device.type != "cpu" or loading.cpu_bf16_fast())
    n_train = _set_trainable(model, config.train_modules)
    yes_no = scoring.answer_token_ids(processor.tokenizer)
    params = [p for p in model.parameters() if p.requires_grad]
    head = None
    if config.distill:
        from training.lexicon import ENCODER_DIM

        # Trained with the model and dropped with it: only the model is saved.
        width = model.config.text_config.hidden_size
        head = torch.nn.Linear(width, ENCODER_DIM).to(model.device)
        params += list(head.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_by_epochs = (
        math.ceil(config.epochs * len(samples) / config.batch_size) if config.epochs else None
    )
    max_steps = min(s for s in (config.max_steps, steps_by_epochs, 10**9) if s is not None)
    total_for_schedule = max_steps if max_steps < 10**9 else None

    def lr_at(step: int, elapsed: float) -> float:
        warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
        if total_for_schedule:
            frac = step / total_for_schedule
        elif config.max_seconds:
            frac = elapsed / config.max_seconds
        else:
            frac = 0.0
        return config.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    from tqdm.auto import tqdm

    order: list[int] = []
    losses: list[float] = []
    cosines: list[float] = []  # the teacher term's cosine per step (`distill` only)
    stats: dict[str, float] = {}
    t0 = time.perf_counter()
    step = seen = 0
    # A bar on a terminal (disable=None: off when stderr is not a TTY, e.g. CI logs, which
    # get the log lines below instead).
    bar = tqdm(
        total=max_steps if max_steps < 10**9 else None,
        desc=config.stage,
        unit="step",
        disable=None,
        mininterval=1.0,
    )
    # Dropout only while training; the tokenizer saved below is deterministic again.
    with bpe_dropout(processor.tokenizer, config.bpe_dropout):
        while step < max_steps:
            elapsed = time.perf_counter() - t0
            if config.max_seconds is not None and elapsed >= config.max_seconds:
                break
            if len(order) < config.batch_size:
                fresh = list(range(len(samples)))
                rng.shuffle(fresh)
                order += fresh
            idx, order = order[: config.batch_size], order[config.batch_size :]
            batch = [samples[i] for i in idx]
            # Fresh OCR noise every time a sample is seen, like a new OCR pass.
            hints = [
                split_words(
                    ocr_noise(
                        word_dropout(s.ocr_text, config.word_dropout, rng), config.ocr_noise, rng
                    ),
                    config.split_words,
                    rng,
                )
                for s in batch
            ]
            for g in opt.param_groups:
                g["lr"] = lr_at(step, elapsed)
            questions = [
                pick_questions(s.labels, policy, config.questions_per_image, rng) for s in batch
            ]
            teacher = None
            if head is not None:
                from training.lexicon import encode_texts

                clean = [h.replace(SPLIT_MARK, "") for h in hints]
                # clone: a normal tensor (encode_texts runs in inference mode)
                targets = encode_texts(clean, max_length=64).clone().to(model.device)
                teacher = (head, targets, config.distill)
            with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = shared_prefix_loss(
                    model,
                    processor,
                    batch,
                    policy,
                    hints,
                    yes_no,
                    config.yes_weight,
                    questions,
                    teacher,
                    stats,
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            if teacher is not None:
                cosines.append(stats["teacher_cos"])
            step += 1
            seen += len(batch)
            bar.update(1)
            if step % config.log_every == 0:
                recent = sum(losses[-config.log_every :]) / config.log_every
                cos_note = ""
                if cosines:
                    cos_note = (
                        f", teacher cos {sum(cosines[-config.log_every :]) / config.log_every:.3f}"
                    )
                log.info(
                    "%s step %d loss %.4f%s (%.0f samples/s)",
                    config.stage,
                    step,
                    recent,
                    cos_note,
                    seen / (time.perf_counter() - t0),
                )
                bar.set_postfix(loss=f"{recent:.4f}")
                _trim_heap()
                if progress:
                    progress(step, recent)
    bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    k = max(1, min(25, len(losses) // 4))
    result = StageResult(
        stage=config.stage,
        steps=step,
        samples=seen,
        seconds=round(seconds, 1),
        first_loss=sum(losses[:k]) / k,
        last_loss=sum(losses[-k:]) / k,
        trainable_params=n_train,
        losses=[round(x, 4) for x in losses[:: max(1, len(losses) // 200)]],
        first_teacher_cos=round(sum(cosines[:k]) / k, 4) if cosines else None,
        last_teacher_cos=round(sum(cosines[-k:]) / k, 4) if cosines else None,
    )
    _append_manifest(model_dir, out, {"stage": asdict(config), "result": asdict(result)})
    return result


def _append_manifest(base: Path, out: Path, entry: dict[str, Any]) -> None:
    """out/warden_training.json = the base model's stage history + this stage."""
    src = Path(base) / "warden_training.json"
    data = json.loads(src.read_text()) if src.exists() else {"stages": []}
    data["stages"].append(entry)
    (Path(out) / "warden_training.json").write_text(json.dumps(data, indent=2, default=str))


def run_stage(
    base: Path,
    manifests: Sequence[Path],
    policy: Policy,
    config: StageConfig,
    out: Path,
) -> StageResult:
    """`warden train pre|mid`: train `base` on one or more manifests into `out`."""
    rows: list[EvalRow] = []
    for m in manifests:
        rows += read_manifest(m, policy)
    samples = load_samples(rows, policy)
    return train_stage(Path(base), samples, policy, config, Path(out))


# --- the demo checkpoint --------------------------------------------------------------------


# What may follow the demo's mid stage (`DemoPlan.benign_stage`, `training.demo_refine`).
BENIGN_STAGES = ("train", "calibrate", "off")


@dataclass(frozen=True)
class DemoPlan:
    """What `warden train demo` does; the recipe training/recipes/demo.yaml fills it."""

    seed: int = 0
    n_train: int = 3000
    n_eval: int = 300
    image_size: int = 224  # the processor resizes to 224 anyway; smaller renders are faster
    withheld_variants: tuple[str, ...] = ("leetspeak",)  # kept for the loop benchmark
    heldout_family_share: float = 0.15  # phrase families never trained on ("unseen" eval)
    arch: DemoArch = DemoArch()
    # Step budgets, not time budgets, so the same seed gives the same checkpoint on any
    # machine (the demo recipe: ~35 min on an idle 2-core CPU; longer when it is shared).
    pre: StageConfig = StageConfig(
        stage="pre",
        train_modules=("model.multi_modal_projector", "model.language_model"),
        lr=3e-3,
        max_steps=80,
        questions_per_image=3,
    )
    mid: StageConfig = StageConfig(
        stage="mid",
        train_modules=("model.multi_modal_projector", "model.language_model"),
        lr=2e-3,
        max_steps=320,
        questions_per_image=3,
    )
    # The last stage (`training.demo_refine`): harmless text from Faker, Mimesis and wordfreq
    # with as many SynthMod samples replayed, then thresholds calibrated on validation for
    # `target_benign_rate`; `n_calibration` SynthMod and as many harmless validation rows.
    benign: StageConfig = StageConfig(
        stage="benign",
        train_modules=("model.multi_modal_projector", "model.language_model"),
        lr=5e-4,
        max_steps=80,  # loss 0.04 after 25 steps from the mid checkpoint; 80 = 1,280 samples
        warmup_steps=10,
        questions_per_image=11,
        ocr_noise=0.05,
        word_dropout=0.1,
    )
    n_benign: int = 2000
    n_calibration: int = 600
    target_benign_rate: float = 0.01
    # Harmless generator texts (`training.benign.benign_texts`) mixed into the mid stage, so
    # the model learns "harmless" from more than SynthMod's small benign bank while it learns
    # harm, instead of in a last stage that unlearns both together.
    mid_benign: int = 0
    # Share of SynthMod's training phrases given a harmless generator text before or after
    # them (labels unchanged), so "reads like Faker" cannot stand for "harmless".
    carrier: float = 0.0
    # Share of the words of SynthMod's harmful training phrases swapped for one of their
    # nearest words by all-MiniLM-L6-v2 (`training.lexicon.with_synonyms`).
    synonyms: float = 0.0
    # What follows mid (`training.demo_refine`): "train" the benign stage and calibrate
    # thresholds; "calibrate" the mid checkpoint as it is; "off": ship mid as it is (what the
    # demo recipe does: the shipped demo is pre + mid, and the benign stage is measured, not
    # shipped, README "The demo checkpoint").
    benign_stage: str = "train"

    def __post_init__(self) -> None:
        if self.benign_stage not in BENIGN_STAGES:
            raise WardenError(
                f"benign_stage {self.benign_stage!r}: expected one of {', '.join(BENIGN_STAGES)}"
            )


def is_heldout_family(family: str, share: float) -> bool:
    """Stable pick of the phrase families kept out of training (bare photos always train)."""
    if family.startswith("photo") or share <= 0:
        return False
    digest = int(hashlib.sha256(family.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < share


def _render(specs: Sequence[Any]) -> list[Sample]:
    from training.synth import render_sample

    out = []
    for spec in specs:
        image, rec = render_sample(spec)
        out.append(
            Sample(
                image.convert("RGB"),
                tuple(rec["labels"]),
                rec["rendered_text"],
                rec["text"] or None,
            )
        )
    return out


def write_eval_set(specs: Sequence[Any], out: Path, *, retention: bool = False) -> Path:
    """Render specs into `out/images` + `out/manifest.jsonl` (what `warden eval` reads)."""
    from training.synth import render_sample

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for spec in specs:
        image, rec = render_sample(spec)
        rel = f"images/{spec.index:06d}-{spec.variant}.png"
        image.save(out / rel, format="PNG", compress_level=1)
        lines.append(json.dumps({"path": rel, **rec, "retention": retention}, ensure_ascii=False))
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / "manifest.jsonl"


def demo_specs(plan: DemoPlan, split: str, n: int) -> list[Any]:
    """SynthMod specs for one demo split.

    train: seed, every variant but the withheld ones, families not held out;
    in_distribution: another seed, same families and variants;
    unseen_families: another seed, held-out families only;
    `<variant>` (a withheld one): another seed, training families, that variant.
    """
    from training.synth import VARIANTS, make_specs, with_variant

    allowed = [v for v in VARIANTS if v not in plan.withheld_variants]
    seed = plan.seed if split == "train" else plan.seed + 1000 + sum(map(ord, split))
    share = plan.heldout_family_share
    out: list[Any] = []
    start = 0
    while len(out) < n:
        batch = make_specs(4 * n, seed, variants=allowed, size=plan.image_size, start=start)
        start += 4 * n
        for spec in batch:
            held = is_heldout_family(spec.family, share)
            if split == "unseen_families":
                keep = held
            else:
                keep = not held
            if keep and split in plan.withheld_variants:
                try:
                    spec = with_variant(spec, split)
                except ValueError:
                    keep = False  # e.g. leetspeak cannot change Hangul or a bare photo
            if keep:
                out.append(spec)
            if len(out) >= n:
                break
        if start > 40 * n:
            raise WardenError(f"SynthMod gives too few samples for the {split} split")
    return out


def augment_specs(specs: list[Any], plan: DemoPlan) -> list[Any]:
    """SynthMod training specs with the plan's synonym swaps and harmless carriers applied
    (each a no-op at 0): what the demo's mid and benign stages train on."""
    if plan.synonyms:
        from training.lexicon import with_synonyms

        specs = with_synonyms(specs, plan.synonyms, plan.seed)
    if plan.carrier:
        from training.benign import with_carriers

        specs = with_carriers(specs, plan.carrier, plan.seed)
    return specs


def train_demo(
    out: Path,
    *,
    plan: DemoPlan | None = None,
    work: Path | None = None,
    policy: Policy | None = None,
    evaluate: bool = True,
    recipe: str = "demo",
) -> dict[str, Any]:
    """Build, pre-train, mid-train and evaluate the demo checkpoint into `out`.

    `recipe` (the recipe `plan` came from) is recorded in the card: post-training a model picks
    its recipe from there (`training.recipes.pick`).

    `work` keeps the evaluation sets (in-distribution, unseen families, each withheld variant)
    for `warden eval` and bench/loop.py. Returns the demo card (also written to
    `out/demo_card.json`).
    """
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY

    plan = plan or DemoPlan()
    policy = policy or load_policy(DEFAULT_POLICY)
    out = Path(out)
    work = Path(work or DEFAULT_DEMO_WORK)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_specs = augment_specs(demo_specs(plan, "train", plan.n_train), plan)
    samples = _render(train_specs)
    harmless: list[Sample] = []
    if plan.mid_benign:
        from training.benign import benign_texts
        from training.demo_refine import _render_texts

        texts = benign_texts(plan.mid_benign, plan.seed)
        harmless = _render_texts(texts, plan.seed, plan.image_size)
    render_s = time.perf_counter() - t0
    log.info("demo: rendered %d training samples in %.0f s", len(samples), render_s)
    init = build_demo_model(
        work / "init", plan.arch, seed=plan.seed, heldout_family_share=plan.heldout_family_share
    )
    clean = [s for s, spec in zip(samples, train_specs, strict=True) if spec.variant == "clean"]
    pre = train_stage(init, clean, policy, replace(plan.pre, seed=plan.seed), work / "pre")
    mid = train_stage(
        work / "pre", samples + harmless, policy, replace(plan.mid, seed=plan.seed), work / "mid"
    )
    # What follows mid (training.demo_refine): the benign stage and thresholds calibrated for
    # a target benign flag rate, thresholds only, or nothing (`plan.benign_stage`).
    from training.demo_refine import refine_demo

    refined = refine_demo(work / "mid", out, plan, policy, mode=plan.benign_stage)
    card: dict[str, Any] = {
        "model": "warden-demo",
        "recipe": recipe,
        "description": (
            "Tiny InternVL trained by `warden train demo` on SynthMod with the rendered text as "
            "OCR hint: a classifier over OCR text, not a reader of pixels."
        ),
        "plan": asdict(plan),
        "render_seconds": round(render_s, 1),
        "stages": [asdict(pre), asdict(mid)] + ([refined.stage] if refined.stage else []),
        "parameters": _count_params(out),
        "train_samples": len(samples) + len(harmless),
        "train_harmless_samples": len(harmless),
        **(
            {"calibration": refined.calibration, "unseen_benign": refined.unseen_benign}
            if refined.calibration
            else {}
        ),
    }
    if evaluate:
        card["eval"] = evaluate_demo(out, plan, work, policy)
    card["total_seconds"] = round(time.perf_counter() - t0, 1)
    (out / "demo_card.json").write_text(json.dumps(card, indent=2, default=str))
    return card


def save_bf16(model_dir: Path) -> None:
    """Re-save a checkpoint in bf16: half the bytes in the repository, and what the backend
    computes in on a CPU anyway (so the demo card's figures are the shipped model's)."""
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.bfloat16)
    model.save_pretrained(model_dir)


def _count_params(path: Path) -> int:
    from safetensors.torch import load_file

    return sum(t.numel() for f in Path(path).glob("*.safetensors") for t in load_file(f).values())


def eval_fingerprint(plan: DemoPlan) -> str:
    """Identifies what the evaluation sets hold: the plan's data fields and SynthMod's own
    code (phrase bank, renderer), so a cached set is never reused after either changes."""
    src = Path(__file__).resolve().parent
    h = hashlib.sha256()
    fields = (plan.seed, plan.n_eval, plan.image_size, plan.withheld_variants)
    h.update(repr((*fields, plan.heldout_family_share)).encode())
    for f in sorted(src.glob("synth*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def demo_eval_sets(plan: DemoPlan, work: Path) -> dict[str, Path]:
    """Render (once) the demo's evaluation manifests under `work/eval-<fingerprint>/<name>/`."""
    sets = {"in_distribution": False, "unseen_families": False}
    sets |= {v: False for v in plan.withheld_variants}
    paths = {}
    root = Path(work) / f"eval-{eval_fingerprint(plan)}"
    for name in sets:
        manifest = root / name / "manifest.jsonl"
        if not manifest.exists():
            write_eval_set(
                demo_specs(plan, name, plan.n_eval),
                manifest.parent,
                retention=name == "in_distribution",
            )
        paths[name] = manifest
    return paths


def evaluate_demo(model_dir: Path, plan: DemoPlan, work: Path, policy: Policy) -> dict[str, Any]:
    """Average recall (and more) of `model_dir` on each demo evaluation set."""
    from model.loading import load_backend
    from storage.settings import ModelSettings
    from training.evaluate import evaluate_backend, manifest_key

    backend = load_backend(ModelSettings(name=str(model_dir), device="cpu", quant="none"))
    results = {}
    for name, manifest in demo_eval_sets(plan, work).items():
        rep = evaluate_backend(
            backend, policy, read_manifest(manifest, policy), eval_key=manifest_key(manifest)
        )
        results[name] = {
            "manifest": str(manifest),
            "average_recall": rep.average_recall,
            "per_category_recall": {c: m.recall for c, m in rep.per_category.items()},
            "ece": rep.ece,
            "n": rep.n,
            "seconds": round(rep.seconds, 1),
        }
        log.info("demo eval %s: average recall %.3f", name, rep.average_recall or 0.0)
    return results
