"""Pre/mid-training loop and the demo architecture: the loss falls, the result loads through
model.loading and scores through the serving backend; recipes validate their keys."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from storage.errors import WardenError
from storage.policy import load_policy
from storage.settings import DEFAULT_POLICY, ModelSettings
from training.pretrain import (
    DemoArch,
    DemoPlan,
    Sample,
    StageConfig,
    build_demo_model,
    eval_fingerprint,
    ocr_noise,
    pick_questions,
    split_words,
    train_stage,
    word_dropout,
)

POLICY = load_policy(DEFAULT_POLICY)
# Small and quick: no word vectors, a small vocabulary (the demo's own shapes are tested below).
SMALL = DemoArch(
    vision_hidden=32, text_hidden=64, text_intermediate=128, vocab_size=2048, word_vectors=False
)


def test_ocr_noise_rate_and_determinism() -> None:
    gen = random.Random(0)
    text = "".join(gen.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(600))
    noisy = ocr_noise(text, 0.05, random.Random(1))
    assert noisy == ocr_noise(text, 0.05, random.Random(1))
    from difflib import SequenceMatcher

    similarity = SequenceMatcher(None, text, noisy, autojunk=False).ratio()
    assert 0.9 < similarity < 0.99  # about 5% of the characters touched
    assert ocr_noise(text, 0.0, random.Random(1)) == text


def test_word_dropout_rate_keeps_short_texts_and_at_least_one_word() -> None:
    words = [f"w{i}" for i in range(2000)]
    kept = word_dropout(" ".join(words), 0.1, random.Random(3)).split(" ")
    assert 0.87 < len(kept) / len(words) < 0.93
    assert kept == [w for w in words if w in set(kept)]  # order kept, nothing invented
    assert word_dropout("buy cheap pills", 0.9, random.Random(0)) == "buy cheap pills"
    assert (
        word_dropout("每天保证收益，立即翻倍返还", 0.9, random.Random(0))
        == "每天保证收益，立即翻倍返还"
    )
    for seed in range(20):
        assert word_dropout("a b c d e", 1.0, random.Random(seed)) in {"a", "b", "c", "d", "e"}
    assert word_dropout("a b c d e", 0.0, random.Random(0)) == "a b c d e"


def test_eval_sets_are_keyed_by_what_they_hold() -> None:
    plan = DemoPlan()
    assert eval_fingerprint(plan) == eval_fingerprint(DemoPlan())
    assert eval_fingerprint(plan) != eval_fingerprint(DemoPlan(n_eval=plan.n_eval + 1))
    assert eval_fingerprint(plan) != eval_fingerprint(DemoPlan(seed=plan.seed + 1))


def test_pick_questions_keeps_every_positive() -> None:
    rng = random.Random(0)
    for _ in range(50):
        q = pick_questions(("scam_fraud", "privacy_pii"), POLICY, 4, rng)
        ids = [POLICY.categories[i].id for i in q]
        assert len(q) == 4 and len(set(q)) == 4
        assert "scam_fraud" in ids and "privacy_pii" in ids
    assert len(pick_questions((), POLICY, 99, rng)) == len(POLICY.categories)


def test_stage_learns_and_loads_through_the_backend(tmp_path: Path) -> None:
    from PIL import Image

    from model.backends import ScoringInput
    from model.loading import load_backend

    init = build_demo_model(tmp_path / "init", SMALL, seed=0)
    white = Image.new("RGB", (224, 224), "white")
    texts = [
        ("WIN A FREE PHONE claim your prize now", ("scam_fraud",)),
        ("buy weed delivered tonight", ("drugs",)),
        ("Lunch menu: soup and bread", ()),
    ]
    samples = [Sample(white, labels, text) for text, labels in texts] * 4
    cfg = StageConfig(
        stage="pre",
        train_modules=("model.multi_modal_projector", "model.language_model"),
        lr=1e-2,
        batch_size=6,
        max_steps=12,
        warmup_steps=2,
        questions_per_image=11,
        ocr_noise=0.0,
    )
    res = train_stage(init, samples, POLICY, cfg, tmp_path / "pre")
    assert res.steps == 12 and res.last_loss < res.first_loss * 0.5, res.losses
    # The vision tower was frozen: its weights are unchanged.
    from safetensors.torch import load_file

    a, b = load_file(init / "model.safetensors"), load_file(tmp_path / "pre" / "model.safetensors")
    vision = [k for k in a if "vision_tower" in k]
    assert vision and all((a[k] == b[k]).all() for k in vision)
    assert any(not (a[k] == b[k]).all() for k in a if "language_model" in k)

    # Same prompt, same backend, same scoring code as serving: the trained answers moved
    # towards the training prior ("No" for most questions), away from the random init's.
    def scores(path: Path) -> dict[str, float]:
        backend = load_backend(
            ModelSettings(name=str(path), device="cpu", quant="none", dtype="float32")
        )
        [v] = backend.score([ScoringInput(image=white, ocr_text=texts[2][0])], POLICY)
        return v.scores

    before, after = scores(init), scores(tmp_path / "pre")
    assert set(after) == set(POLICY.ids)
    assert sum(after.values()) < sum(before.values()) - 1.0, (before, after)


def test_demo_model_is_uncased_and_starts_from_word_vectors(tmp_path: Path) -> None:
    from dataclasses import replace

    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from model.scoring import answer_token_ids
    from training.lexicon import embedding_init

    arch = replace(SMALL, vocab_size=4096, word_vectors=True)
    path = build_demo_model(tmp_path / "demo", arch, seed=3)
    tok = AutoProcessor.from_pretrained(path).tokenizer
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    assert len(tok) == arch.vocab_size == model.config.text_config.vocab_size
    assert tok(" FREE MONEY")["input_ids"] == tok(" free money")["input_ids"]
    answer_token_ids(tok)  # "Yes" and "No" stay single tokens
    expected = embedding_init(tok, arch.text_hidden, std=0.02, seed=3)
    got = model.get_input_embeddings().weight.detach()
    # Equal up to float noise (BLAS thread counts change the encoder's low bits, and PCA axes
    # with near-equal variance can turn a little): compare each row's direction.
    cos = torch.nn.functional.cosine_similarity(got, expected, dim=-1)  # [V]
    assert float(cos.min()) > 0.99, float(cos.min())
    # Tied: the LM head's "Yes" row is the embedding's.
    assert model.get_output_embeddings().weight.data_ptr() == (
        model.get_input_embeddings().weight.data_ptr()
    )


def test_bpe_dropout_trains_on_pieces_and_is_never_saved(tmp_path: Path) -> None:
    import json

    from PIL import Image
    from transformers import AutoProcessor

    init = build_demo_model(tmp_path / "init", SMALL)
    white = Image.new("RGB", (224, 224), "white")
    samples = [Sample(white, ("drugs",), "buy weed delivered tonight")] * 2
    cfg = StageConfig(max_steps=2, batch_size=2, questions_per_image=2, bpe_dropout=0.5)
    train_stage(init, samples, POLICY, cfg, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "tokenizer.json").read_text())
    assert saved["model"]["type"] == "BPE" and saved["model"]["dropout"] is None
    tok = AutoProcessor.from_pretrained(tmp_path / "out").tokenizer
    runs = {tuple(tok("buy weed delivered tonight")["input_ids"]) for _ in range(20)}
    assert len(runs) == 1  # serving tokenizes deterministically


def test_bpe_dropout_splits_words_inside_the_block_and_restores_on_error(tmp_path: Path) -> None:
    from transformers import AutoProcessor

    from training.pretrain import bpe_dropout

    tok = AutoProcessor.from_pretrained(build_demo_model(tmp_path / "init", SMALL)).tokenizer
    text = " delivered delivered delivered tonight"
    whole = tok(text, add_special_tokens=False)["input_ids"]
    with bpe_dropout(tok, 0.5):
        runs = [tok(text, add_special_tokens=False)["input_ids"] for _ in range(20)]
    assert any(len(r) > len(whole) for r in runs)  # words seen as pieces while training
    assert tok.decode(runs[0]) == text  # the same text, only segmented differently
    with pytest.raises(RuntimeError), bpe_dropout(tok, 0.5):
        raise RuntimeError("a failing step")
    assert tok(text, add_special_tokens=False)["input_ids"] == whole


def test_split_words_cuts_latin_words_only_and_loses_no_letter() -> None:
    from training.pretrain import SPLIT_MARK

    text = "buy cheap cocaine tonight, text me 010-5555 每天保证收益 ok"
    out = split_words(text, 0.5, random.Random(4))
    assert out == split_words(text, 0.5, random.Random(4))
    assert out.replace(SPLIT_MARK, "") == text
    assert "每天保证收益" in out and " me " in out and " ok" in out  # CJK, <3 letters: whole
    assert split_words(text, 0.0, random.Random(4)) == text
    words = " ".join(f"word{chr(97 + i % 26)}xyz" for i in range(1000))
    cut = split_words(words, 0.2, random.Random(0)).split(" ")
    share = sum(SPLIT_MARK in w for w in cut) / len(cut)
    assert 0.16 < share < 0.24
    every = split_words("abcdefgh", 1.0, random.Random(1), cut=1.0)
    assert every == SPLIT_MARK.join("abcdefgh")


def test_split_words_reach_the_model_as_pieces_of_the_same_text(tmp_path: Path) -> None:
    from PIL import Image
    from transformers import AutoProcessor

    from model import scoring
    from training.pretrain import SPLIT_MARK, drop_split_marks

    proc = AutoProcessor.from_pretrained(build_demo_model(tmp_path / "init", SMALL))
    tok = proc.tokenizer
    plain = "buy weed delivered tonight"
    marked = plain.replace("delivered", f"del{SPLIT_MARK}iver{SPLIT_MARK}ed")
    prefixes = [
        scoring.render_prompt_parts(proc, POLICY, text=None, ocr_text=t).prefix.replace(
            SPLIT_MARK, tok.pad_token
        )
        for t in (marked, plain, "x")
    ]
    white = Image.new("RGB", (224, 224), "white")
    enc = scoring._processor_inputs(proc, prefixes, [white] * 3, "cpu", None)
    enc = drop_split_marks(enc, tok.pad_token_id)
    mask = enc["attention_mask"].bool()
    rows = [enc["input_ids"][b][mask[b]].tolist() for b in range(3)]
    assert tok.pad_token_id not in sum(rows, [])  # every mark gone
    assert tok.decode(rows[0]) == tok.decode(rows[1])  # the same text...
    assert len(rows[0]) > len(rows[1])  # ...in more pieces
    for piece in (" del", "iver", "ed"):  # each piece tokenized on its own
        ids = tok(piece, add_special_tokens=False)["input_ids"]
        assert any(rows[0][i : i + len(ids)] == ids for i in range(len(rows[0])))
    assert mask[:, -1].all()  # still left-padded, the shortest row too
    assert enc["input_ids"].shape == enc["attention_mask"].shape
    # A training stage with split words runs end to end.
    samples = [Sample(white, ("drugs",), "buy weed delivered tonight")] * 2
    cfg = StageConfig(max_steps=2, batch_size=2, questions_per_image=2, split_words=1.0)
    res = train_stage(tmp_path / "init", samples, POLICY, cfg, tmp_path / "out")
    assert res.steps == 2 and res.last_loss == res.last_loss  # finite, not NaN


def test_word_vectors_stay_as_they_start_when_only_the_decoder_trains(tmp_path: Path) -> None:
    """The demo-open recipe trains the decoder layers, final norm and projector: the input
    embeddings (tied to the output head) keep the word vectors they start as, so a word no
    training phrase used keeps its place next to the words that were."""
    from PIL import Image
    from safetensors.torch import load_file

    from training.recipes import load_recipe

    recipe = load_recipe("demo-open")
    assert recipe.demo.mid_benign > 0 and 0 < recipe.demo.carrier < 1
    assert recipe.demo.benign_stage == "calibrate"
    modules = recipe.demo.mid.train_modules
    assert recipe.demo.pre.train_modules == modules
    assert not any(m == "model.language_model" or "embed" in m for m in modules)
    init = build_demo_model(tmp_path / "init", SMALL, seed=0)
    white = Image.new("RGB", (224, 224), "white")
    samples = [Sample(white, ("drugs",), "buy weed tonight"), Sample(white, (), "lunch menu")]
    cfg = StageConfig(
        stage="mid", train_modules=modules, lr=1e-2, batch_size=2, max_steps=3, warmup_steps=1
    )
    train_stage(init, samples * 2, POLICY, cfg, tmp_path / "mid")
    a, b = load_file(init / "model.safetensors"), load_file(tmp_path / "mid" / "model.safetensors")
    embed = [k for k in a if "embed_tokens" in k]
    assert embed and all((a[k] == b[k]).all() for k in embed)
    assert any(not (a[k] == b[k]).all() for k in a if ".layers." in k)


def test_stage_refuses_unknown_modules(tmp_path: Path) -> None:
    init = build_demo_model(tmp_path / "init", SMALL)
    from PIL import Image

    sample = Sample(Image.new("RGB", (224, 224)), (), "")
    with pytest.raises(WardenError, match="no parameter matches"):
        train_stage(
            init,
            [sample],
            POLICY,
            StageConfig(train_modules=("nope",), max_steps=1),
            tmp_path / "o",
        )


def test_recipes_load_and_validate(tmp_path: Path) -> None:
    from training.recipes import load_recipe

    demo = load_recipe("demo")
    assert demo.demo.withheld_variants == ("leetspeak",) and demo.demo.mid.max_steps
    # The plain demo recipe: pre + mid, no benign stage, no thresholds (the base demo-mixed and
    # demo-distill build on)
    assert demo.demo.benign_stage == "off" and not demo.demo.mid_benign and not demo.demo.carrier
    with pytest.raises(WardenError, match="benign_stage 'of': expected one of train"):
        DemoPlan(benign_stage="of")
    char = load_recipe("demo-char")
    assert not char.demo.arch.phrase_tokens and char.demo.arch.split_digits
    assert char.demo.mid.max_steps == demo.demo.mid.max_steps  # trained as long as the demo
    big = load_recipe("internvl3_5-2b")
    assert big.post.qlora and big.base == "OpenGVLab/InternVL3_5-2B-HF"
    assert big.pre.train_modules == ("model.multi_modal_projector",)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npost:\n  lerning_rate: 1\n")
    with pytest.raises(WardenError, match="unknown key 'lerning_rate'"):
        load_recipe(bad)


def test_a_recipe_extends_another_and_overrides_only_what_it_names(tmp_path: Path) -> None:
    from dataclasses import replace

    from training.recipes import load_recipe

    demo = load_recipe("demo")
    child = tmp_path / "child.yaml"
    child.write_text(
        "extends: demo\nname: c\nmid:\n  lr: 0.01\ndemo:\n  arch:\n    text_layers: 3\n"
    )
    c = load_recipe(child)
    assert c.name == "c" and c.mid == replace(demo.mid, lr=0.01) and c.pre == demo.pre
    assert c.demo.arch == replace(demo.demo.arch, text_layers=3)
    assert c.demo.n_train == demo.demo.n_train and c.post == demo.post
    grandchild = tmp_path / "g.yaml"  # a path beside the file, and a chain of two
    grandchild.write_text("extends: child.yaml\npost:\n  epochs: 1\n")
    g = load_recipe(grandchild)
    assert g.mid.lr == 0.01 and g.post == replace(demo.post, epochs=1)

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(WardenError, match="cycle"):
        load_recipe(a)
    orphan = tmp_path / "o.yaml"
    orphan.write_text("extends: no-such-recipe\n")
    with pytest.raises(WardenError, match="no recipe 'no-such-recipe'"):
        load_recipe(orphan)
    typo = tmp_path / "t.yaml"
    typo.write_text("extends: demo\nmid:\n  lerning_rate: 1\n")
    with pytest.raises(WardenError, match="unknown key 'lerning_rate'"):
        load_recipe(typo)


def test_a_character_reader_keeps_prompt_words_whole(tmp_path: Path) -> None:
    from dataclasses import replace

    from transformers import AutoProcessor

    from training.synth_text import is_cjk

    arch = replace(SMALL, vocab_size=4096, phrase_tokens=False, split_digits=True)
    tok = AutoProcessor.from_pretrained(build_demo_model(tmp_path / "m", arch)).tokenizer
    for word in ("cocaine", "mephedrone", "ketamine"):  # SynthMod words: read in pieces
        assert len(tok(f" {word}", add_special_tokens=False)["input_ids"]) > 1, word
    assert len(tok(" Policy category", add_special_tokens=False)["input_ids"]) == 2
    hanzi = "每天保证收益"
    assert all(is_cjk(ch) for ch in hanzi)
    assert len(tok(hanzi, add_special_tokens=False)["input_ids"]) == len(hanzi)


def test_teacher_loss_is_a_cosine_on_what_the_last_layer_reads(tmp_path: Path) -> None:
    """`distill`: the teacher term is weight * (1 - cosine), and it reaches the model through
    the input of the last decoder layer (what the answers attend to), so its gradient moves
    the first layer and not the last one."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from model import scoring
    from training.pretrain import shared_prefix_loss

    init = build_demo_model(tmp_path / "init", SMALL, seed=0)
    proc = AutoProcessor.from_pretrained(init)
    model = AutoModelForImageTextToText.from_pretrained(init, dtype=torch.float32)
    white = Image.new("RGB", (224, 224), "white")
    batch = [Sample(white, ("drugs",), "buy weed tonight"), Sample(white, (), "lunch menu")]
    hints = [s.ocr_text for s in batch]
    yes_no = scoring.answer_token_ids(proc.tokenizer)
    plain = shared_prefix_loss(model, proc, batch, POLICY, hints, yes_no, 1.0)

    # A head blind to the state (weights 0, bias b): the term is w * (1 - cos(b, target)).
    blind = torch.nn.Linear(SMALL.text_hidden, 384)
    torch.nn.init.zeros_(blind.weight)
    b = blind.bias.detach()
    for target, term in (
        (b, 0.0),
        (-b, 2.0),
        (
            torch.roll(b, 1),
            1 - float(torch.nn.functional.cosine_similarity(b, torch.roll(b, 1), dim=0)),
        ),
    ):
        targets = torch.stack([target, target])
        stats: dict[str, float] = {}
        got = shared_prefix_loss(
            model,
            proc,
            batch,
            POLICY,
            hints,
            yes_no,
            1.0,
            teacher=(blind, targets, 0.5),
            stats=stats,
        )
        assert float((got - plain).detach()) == pytest.approx(0.5 * term, abs=1e-5)
        # The cosine is reported apart from the summed loss.
        assert stats["teacher_cos"] == pytest.approx(1 - term, abs=1e-5)

    # A head that reads the state: the term's gradient (the cross-entropy cancels out).
    model.zero_grad()
    head = torch.nn.Linear(SMALL.text_hidden, 384)
    targets = torch.nn.functional.normalize(torch.randn(2, 384), dim=-1)
    with_teacher = shared_prefix_loss(
        model, proc, batch, POLICY, hints, yes_no, 1.0, teacher=(head, targets, 1.0)
    )
    (with_teacher - shared_prefix_loss(model, proc, batch, POLICY, hints, yes_no, 1.0)).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    first = [g for n, g in grads.items() if ".layers.0." in n]
    last = [g for n, g in grads.items() if ".layers.1." in n]
    assert first and any(g.abs().max() > 1e-6 for g in first)
    assert all(g.abs().max() < 1e-6 for g in last)


def test_a_stage_with_a_teacher_saves_the_model_alone(tmp_path: Path) -> None:
    from PIL import Image
    from safetensors.torch import load_file

    from model.loading import load_backend

    init = build_demo_model(tmp_path / "init", SMALL, seed=0)
    white = Image.new("RGB", (224, 224), "white")
    samples = [Sample(white, ("drugs",), "buy weed tonight"), Sample(white, (), "lunch menu")]
    cfg = StageConfig(max_steps=3, batch_size=2, questions_per_image=2, distill=1.0)
    res = train_stage(init, samples, POLICY, cfg, tmp_path / "out")
    assert res.steps == 3 and res.last_loss == res.last_loss
    assert -1.0 <= res.first_teacher_cos <= 1.0 and -1.0 <= res.last_teacher_cos <= 1.0
    plain = train_stage(init, samples, POLICY, replace(cfg, distill=0.0), tmp_path / "plain")
    assert plain.first_teacher_cos is None and plain.last_teacher_cos is None
    a, b = load_file(init / "model.safetensors"), load_file(tmp_path / "out" / "model.safetensors")
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    load_backend(ModelSettings(name=str(tmp_path / "out"), device="cpu", quant="none"))


def test_the_demo_card_names_the_recipe_it_was_built_with(tmp_path: Path) -> None:
    from training.pretrain import train_demo
    from training.recipes.pick import recipe_for_base

    one_step = StageConfig(max_steps=1, batch_size=2, questions_per_image=2)
    plan = DemoPlan(
        n_train=6,
        arch=SMALL,
        pre=replace(one_step, stage="pre"),
        mid=replace(one_step, stage="mid"),
        benign_stage="off",
    )
    card = train_demo(
        tmp_path / "out", plan=plan, work=tmp_path / "work", evaluate=False, recipe="demo-mixed"
    )
    assert card["recipe"] == "demo-mixed"
    # Post-training that checkpoint picks the recipe that built it, not the demo's.
    assert recipe_for_base(str(tmp_path / "out")) == "demo-mixed"
