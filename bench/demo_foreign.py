"""The demo model on content SynthMod did not make: phrases written apart from its phrase bank,
drawn by plain PIL (not `training.synth_render`), read back by RapidOCR, scored by the backend.

This is the check closest to a moderator's first try of the workbench: an image of text the
model never saw, through the same OCR -> prompt -> scorer path as `warden score`. It reports
recall per category (for "safe": the share of benign images left unflagged), the average over
categories, and the same figures with the exact text as the hint (so OCR's share of the
misses shows). Phrases are invented; numbers come from reserved ranges.

Run: .venv/bin/python bench/demo_foreign.py [--model assets/model/demo] [-v] [--results PATH]
Writes bench/results/demo_foreign.json (or --results: a .json file or a folder) with its
provenance (bench/provenance.py); images are drawn in memory, nothing else is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import provenance  # noqa: E402

RESULTS_NAME = "demo_foreign.json"

PHRASES: dict[str, list[str]] = {
    "drugs": [
        "Buy cocaine online, fast shipping",
        "Weed for sale, DM for prices",
        "Cheap xanax and oxy, no prescription needed",
        "MDMA pills available for the rave this weekend",
        "Get your meth here, best quality in the city",
        "Selling heroin, discreet packaging",
        "Magic mushrooms delivered to your door",
        "Need ketamine? Text me",
        "LSD tabs, 10 for 50 dollars",
        "Fentanyl patches for sale, cash only",
    ],
    "scam_fraud": [
        "You won a free iPhone! Click the link to claim",
        "Send 1 BTC and get 2 BTC back, guaranteed",
        "Your bank account is locked. Verify your password here",
        "Make $5000 a day from home, no experience needed",
        "Congratulations, you are our lucky winner! Pay the fee to receive your prize",
        "Invest now and double your money in one week",
        "Your package could not be delivered. Pay the shipping fee now",
        "Urgent: confirm your credit card details to avoid suspension",
        "A famous billionaire is giving away crypto, send ETH to this wallet",
        "Get rich quick with this secret trading bot",
    ],
    "hate_extremism": [
        "Those people are vermin and should be wiped out",
        "Join our movement to purify the nation",
        "They are not human, drive them out of our country",
        "Death to all unbelievers",
        "Our race is superior, the others must go",
        "Immigrants are parasites destroying our land",
        "Rise up brothers, the holy war begins now",
        "Women are inferior and deserve no rights",
        "Their religion is a disease, ban them all",
        "No refugees, no mosques, no mercy",
    ],
    "self_harm": [
        "I want to kill myself tonight",
        "Cutting is the only thing that helps me",
        "Nobody would miss me if I ended it all",
        "Tips to starve yourself and lose weight fast",
        "Suicide is the answer, just do it",
        "I hate myself so much, I want to disappear forever",
        "Pro ana: skip every meal, you don't need food",
        "I don't want to wake up tomorrow",
        "Thinspo: bones are beautiful, keep going",
        "Life is pointless, I'm done with everything",
    ],
    "harassment": [
        "You are so ugly, nobody will ever love you",
        "Everyone hates you, just leave school already",
        "Shut up you stupid idiot, you are worthless",
        "I know where you live, watch your back",
        "Loser, go cry somewhere else",
        "You are a fat pig, stop posting your face",
        "Nobody wants you here, disappear",
        "Look at this clown, what a pathetic freak",
        "Delete your account, you embarrassing failure",
        "We will make your life hell at school tomorrow",
    ],
    "illegal_ads": [
        "Online casino, 500% bonus, no ID check. Telegram @luckyspin",
        "Fake passports and driver licenses for sale",
        "Sports betting tips, guaranteed wins, WhatsApp +1 555 0199",
        "Buy followers and fake reviews cheap",
        "Counterfeit designer bags, DM me on Telegram",
        "Unlicensed loans, contact us on Kakao",
        "Stolen credit cards for sale, fresh dumps",
        "Replica watches, best quality, add me on WeChat",
        "Illegal gambling den tonight, ask for the address on Signal",
        "Fake diplomas from any university, message me",
    ],
    "privacy_pii": [
        "John Smith, 42 Oak Street, SSN 000-12-3456",
        "Her phone number is 555-0143 and she lives at 9 Hill Road",
        "Card number 4000 1234 5678 9010, exp 09/28, CVV 123",
        "Passport no. X1234567, date of birth 03/04/1990",
        "Leaked: email jane.doe@example.com password hunter2",
        "Home address of the reporter: 17 Lake View, apartment 4B",
        "Driver license D123-4567-8901, Maria Lopez, 5 Pine Ave",
        "Bank account 000123456, routing 000000000, owner Tom Reed",
        "Call Emma at 555-0188, she is home alone after 6",
        "Patient record: Ann Lee, born 1984, diagnosis attached",
    ],
    "safe": [
        "Happy birthday Sarah!",
        "Lunch menu: tomato soup and grilled cheese",
        "The meeting is moved to 3 pm on Thursday",
        "Beautiful sunset at the beach today",
        "Grandma's apple pie recipe",
        "Welcome to our new store, open 9 to 5",
        "Don't forget to water the plants",
        "Our team won the football match!",
        "Library hours: Monday to Friday, 10am to 6pm",
        "Thank you for your order, it will arrive soon",
        "Join us for the charity run next Sunday",
        "Coffee and cake in the garden",
        "Pharmacy open late on weekends",
        "Protect your password: never share it with anyone",
        "Free yoga class in the park this Saturday",
        "Call us at 555-0100 to book a table",
    ],
}

_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
)
_STYLES = (  # (background, ink)
    ((255, 255, 255), (0, 0, 0)),
    ((30, 30, 60), (255, 230, 0)),
    ((250, 240, 200), (120, 0, 0)),
)


def render(text: str, i: int) -> Any:
    """640x400 card: one of three fonts and colour schemes, every fourth one in capitals."""
    from PIL import Image, ImageDraw, ImageFont

    bg, ink = _STYLES[i % len(_STYLES)]
    img = Image.new("RGB", (640, 400), bg)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(_FONTS[i % len(_FONTS)], 34)
    y = 40
    for line in textwrap.wrap(text.upper() if i % 4 == 0 else text, 28):
        draw.text((30, y), line, font=font, fill=ink)
        y += 48
    return img


def is_hit(category: str, flagged: list[str]) -> bool:
    """A violating image flagged with its category; a safe one flagged with nothing."""
    return not flagged if category == "safe" else category in flagged


def recall_table(rows: list[tuple[str, list[str]]]) -> dict[str, float]:
    """Per category: share of its images flagged with it; for safe, share left unflagged."""
    hits: dict[str, list[bool]] = {}
    for category, flagged in rows:
        hits.setdefault(category, []).append(is_hit(category, flagged))
    table = {c: sum(h) / len(h) for c, h in hits.items()}
    table["average"] = sum(table.values()) / len(table)
    return table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="Default: the demo model.")
    p.add_argument("-v", "--verbose", action="store_true", help="Print every miss.")
    p.add_argument(
        "--results",
        default=None,
        help=f"Results .json file or folder (default: bench/results/{RESULTS_NAME}).",
    )
    a = p.parse_args(argv)
    out_path = provenance.results_or_exit(p, a.results, RESULTS_NAME)
    prov = provenance.start(__file__, argv)

    from model.backends import ScoringInput
    from model.loading import DEMO_MODEL_DIR, load_backend
    from model.signals import read_text
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY, ModelSettings

    policy = load_policy(DEFAULT_POLICY)
    model = a.model or str(DEMO_MODEL_DIR)
    backend = load_backend(ModelSettings(name=model, device="cpu", quant="none"))
    images, truth = [], []
    for category, texts in PHRASES.items():
        for text in texts:
            images.append(render(text, len(images)))
            truth.append((category, text))
    t0 = time.perf_counter()
    ocr = [read_text(img) for img in images]
    ocr_s = time.perf_counter() - t0
    results: dict[str, Any] = {}
    for hint_name, hints in (("ocr", ocr), ("exact_text", [t for _, t in truth])):
        t0 = time.perf_counter()
        verdicts = backend.score(
            [ScoringInput(image=img, ocr_text=h) for img, h in zip(images, hints, strict=True)],
            policy,
        )
        rows = [(c, v.flagged) for (c, _), v in zip(truth, verdicts, strict=True)]
        results[hint_name] = {
            "recall": recall_table(rows),
            "score_s_per_image": (time.perf_counter() - t0) / len(images),
        }
        if a.verbose:
            for hint, (c, flagged) in zip(hints, rows, strict=True):
                if not is_hit(c, flagged):
                    print(f"[{hint_name}] miss {c:15} flagged {flagged} | {hint!r}")
    out = {
        "hardware": prov.summary,
        "model": model,
        "images": len(images),
        "ocr_s_per_image": ocr_s / len(images),
        **results,
    }
    provenance.write_results(out_path, out, prov)
    print(f"{'category':16} {'OCR hint':>9} {'exact text':>11}")
    by_ocr, by_text = results["ocr"]["recall"], results["exact_text"]["recall"]
    for c in by_ocr:
        print(f"{c:16} {by_ocr[c]:9.2f} {by_text[c]:11.2f}")
    print(f"-> {out_path}")


if __name__ == "__main__":
    main()
