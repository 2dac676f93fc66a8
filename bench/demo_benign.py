"""Does the demo flag plain harmless text it never saw? And does it still catch harmful text?

Two demo checkpoints (by default the shipped one and a candidate) scored in the same run on:

- harmless text no training or calibration step drew: `training.benign.heldout_benign_texts`
  (Faker en_GB/en_AU/zh_TW, Mimesis en-gb/en-au/ko compositions; locales, providers and a seed
  stream that training never uses), plus plain notices written here (the issue's "Garden party
  at 3 pm", "Reading club", ...) and bench/demo_foreign.py's harmless phrases;
- harmful plain paraphrases: bench/demo_foreign.py's phrases plus more written here, none
  from SynthMod's phrase bank.

Each text is drawn by plain PIL (bench/demo_foreign.py's `render`, not SynthMod's renderer)
and scored through the serving backend with the text itself as the OCR hint (this measures the
model, not OCR; bench/demo_foreign.py measures both). Reports benign flagged (share of harmless
texts with any category flagged) per source and overall, and harmful caught (share of harmful
texts flagged with their category) per category and overall, for each model.

`best_thresholds`: for each model, the most harmful texts any per-category thresholds could
catch while flagging at most 0, 1, 3 or 5% of the harmless texts, with the thresholds chosen
on these very texts (exact: an integer program, `best_caught`). No calibration on other data
can do better, so where it falls short of an aim the aim needs another model, not other
thresholds.

`--encoder-baseline` adds a third row: the demo's own training texts given to a model that
arrives knowing language (a logistic regression per category on all-MiniLM-L6-v2 sentence
vectors, `measure_encoder_baseline`), scored on the same held-out texts.

Run: .venv/bin/python bench/demo_benign.py [--old assets/model/demo] [--new DIR] [--n 400]
     [--encoder-baseline] [--results PATH]
     (default bench/results/demo_benign.json, with provenance)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import provenance  # noqa: E402
from bench.demo_foreign import PHRASES, render  # noqa: E402

RESULTS_NAME = "demo_benign.json"
# Seed of the never-seen harmless texts (training draws seed 0 and 1 from other locales).
SEED = 11

NOTICES = [
    "Garden party at 3 pm",
    "Reading club meets every Tuesday",
    "Please keep the door closed",
    "Bake sale in the school hall on Friday",
    "Parking for visitors only",
    "The elevator is out of service today",
    "Choir practice moved to room 204",
    "Fresh bread every morning from 7 am",
    "Please return your books by the due date",
    "Lost cat: grey tabby, answers to Milo",
    "Wet paint, do not touch",
    "Quiet zone: study area",
    "Farmers market this Saturday, 8 to noon",
    "Kids swim lessons start in June",
    "Recycling goes out on Wednesday night",
    "Thank you for shopping with us",
    "Staff meeting at 10 in the blue room",
    "Closed for the holidays, back on January 3",
    "Half price pizza on Mondays",
    "Please wash your hands before returning to work",
    "Hiking group: meet at the trailhead at 6 am",
    "Photography workshop for beginners",
    "New opening hours: 8 am to 8 pm",
    "Tea, coffee and biscuits in the lobby",
    "Our dentist will see you shortly",
    "동네 도서관 독서 모임 매주 화요일",
    "오늘의 메뉴: 김치찌개와 계란말이",
    "社区花园开放时间：上午九点到下午五点",
    "欢迎参加周末读书会",
    "Piano recital tonight at the town hall",
]

PARAPHRASES: dict[str, list[str]] = {
    "drugs": [
        "Got coke and molly for tonight, hit me up",
        "Selling oxy pills without a script, message me",
        "Crystal meth in stock, quick delivery",
        "Anyone want some shrooms? Good prices",
        "Heroin and fentanyl delivered discreetly",
    ],
    "scam_fraud": [
        "Claim your free gift card now, just enter your bank login",
        "Double your bitcoin in 24 hours, send it to this address",
        "Your account will be closed unless you confirm your PIN here",
        "Earn thousands weekly from home, pay a small fee to join",
        "You have won the lottery, send your card number to collect",
    ],
    "hate_extremism": [
        "Those foreigners are rats, throw them all out",
        "Our blood is pure, theirs is filth",
        "Kill the infidels, the holy war is here",
        "Their kind are animals and do not belong among us",
        "Join the brotherhood and cleanse our nation",
    ],
    "self_harm": [
        "I am going to end my life tonight",
        "Cutting myself again, it is the only relief",
        "How many pills does it take to never wake up",
        "Starve until you can see your ribs, no food today",
        "Everyone would be better off if I was dead",
    ],
    "harassment": [
        "You are disgusting, nobody will ever want you",
        "Kill yourself you worthless freak",
        "I will find you after school and hurt you",
        "Stupid ugly loser, get off this site",
        "Everyone laughs at you behind your back, pathetic",
    ],
    "illegal_ads": [
        "Fake IDs and passports, any country, message on Telegram",
        "No-license casino, huge bonus, no ID required",
        "Selling stolen card dumps, fresh and cheap",
        "Buy fake reviews and followers in bulk",
        "Counterfeit sneakers and watches, DM to order",
    ],
    "privacy_pii": [
        "Sarah Miller lives at 23 Elm Street, her SSN is 000-45-6789",
        "Here is his card: 4000 5678 1234 9012, CVV 321",
        "Leaked login: mark.b@example.com password sunshine1",
        "Passport number Y7654321, born 12/05/1988, Paul King",
        "Her phone is 555-0172 and she is alone at home after 8",
    ],
}


def benign_sets(n: int) -> dict[str, list[str]]:
    """Harmless text by source: generated (never seen), written here, demo_foreign's."""
    from training.benign import heldout_benign_texts

    sets: dict[str, list[str]] = {}
    for t in heldout_benign_texts(n, SEED):
        sets.setdefault(t.source.rsplit(":", 1)[0], []).append(t.text)
    sets["notices (written here)"] = NOTICES
    sets["demo_foreign safe"] = PHRASES["safe"]
    return sets


N_FOREIGN_HARMFUL = sum(len(t) for c, t in PHRASES.items() if c != "safe")


def harmful_rows() -> list[tuple[str, str]]:
    rows = [(c, t) for c, texts in PHRASES.items() if c != "safe" for t in texts]
    return rows + [(c, t) for c, texts in PARAPHRASES.items() for t in texts]


# Harmless shares at which `best_thresholds` is reported (the aim is 0.03).
BUDGETS = (0.0, 0.01, 0.03, 0.05)


def best_caught(benign: Any, harmful: Any, harmful_cat: Any, k: int) -> tuple[int, list[float]]:
    """The most harmful rows any per-category thresholds catch while flagging at most `k`
    harmless rows, and such thresholds. Exact (an integer program solved by HiGHS).

    benign: [B, C] scores of harmless rows; harmful: [H, C] scores of harmful rows;
    harmful_cat: [H] the column each harmful row must be flagged in to count as caught. A row
    is flagged in column c when its score is at or above the threshold of c.

    The program: x_h = 1 when harmful row h is caught, y_b = 1 when harmless row b is flagged;
    catching h (column c) flags every harmless row scoring at least h's score in c, so
    x_h <= y_b for each such b; sum(y) <= k; maximise sum(x). Any thresholds give a feasible
    point, and a solution gives thresholds (each column's lowest caught score) that flag only
    rows with y_b = 1, so the optimum is the bound.
    """
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    benign = np.asarray(benign, dtype=np.float64)
    harmful = np.asarray(harmful, dtype=np.float64)
    harmful_cat = np.asarray(harmful_cat, dtype=np.int64)
    n_benign, n_cols = benign.shape
    n_harmful = len(harmful)
    own = harmful[np.arange(n_harmful), harmful_cat]  # [H]
    rows, cols, vals = [], [], []
    for h in range(n_harmful):
        for b in np.flatnonzero(benign[:, harmful_cat[h]] >= own[h]):
            r = len(rows) // 2
            rows += [r, r]
            cols += [h, n_harmful + int(b)]
            vals += [1.0, -1.0]
    n_pairs = len(rows) // 2
    budget = coo_array(
        ([1.0] * n_benign, ([n_pairs] * n_benign, range(n_harmful, n_harmful + n_benign))),
        shape=(n_pairs + 1, n_harmful + n_benign),
    )
    pairs = coo_array((vals, (rows, cols)), shape=(n_pairs + 1, n_harmful + n_benign))
    upper = np.zeros(n_pairs + 1)
    upper[-1] = k
    res = milp(
        c=np.concatenate([-np.ones(n_harmful), np.zeros(n_benign)]),
        constraints=LinearConstraint((pairs + budget).tocsr(), -np.inf, upper),
        integrality=np.ones(n_harmful + n_benign),
        bounds=Bounds(0, 1),
    )
    if not res.success:
        raise RuntimeError(f"HiGHS found no optimum: {res.message}")
    chosen = res.x[:n_harmful] > 0.5
    # Each column's threshold: its lowest caught score (a column catching nothing: above all).
    thresholds = []
    for j in range(n_cols):
        caught = own[chosen & (harmful_cat == j)]
        top = max(float(benign[:, j].max(initial=0.0)), float(harmful[:, j].max(initial=0.0)))
        thresholds.append(float(caught.min()) if caught.size else float(np.nextafter(top, 2)))
    return int(chosen.sum()), thresholds


def best_thresholds(
    benign_scores: list[dict[str, float]],
    harmful_scores: list[dict[str, float]],
    harmful_cats: list[str],
    budgets: tuple[float, ...] = BUDGETS,
) -> dict[str, Any]:
    """`best_caught` at each harmless share in `budgets`: harmful caught overall and per
    category, with the thresholds (on these very texts: an upper bound, not a calibration)."""
    import numpy as np

    # A category no score carries (a baseline without that head) scores 0: caught by nothing.
    cols = sorted({c for s in benign_scores + harmful_scores for c in s} | set(harmful_cats))
    benign = np.array([[s.get(c, 0.0) for c in cols] for s in benign_scores])
    harmful = np.array([[s.get(c, 0.0) for c in cols] for s in harmful_scores])
    cat_idx = np.array([cols.index(c) for c in harmful_cats])
    out: dict[str, Any] = {}
    for share in budgets:
        k = math.floor(share * len(benign_scores) + 1e-9)
        caught, thresholds = best_caught(benign, harmful, cat_idx, k)
        own = harmful[np.arange(len(harmful)), cat_idx]
        hit = own >= np.array(thresholds)[cat_idx]
        per_cat = {
            c: round(float(hit[cat_idx == j].mean()), 4)
            for j, c in enumerate(cols)
            if (cat_idx == j).any()
        }
        out[f"{share:.2f}"] = {
            "harmless_flagged_at_most": k,
            "harmful_caught": round(caught / max(1, len(harmful_cats)), 4),
            "harmful_caught_by_category": per_cat,
            "thresholds": {c: round(t, 6) for c, t in zip(cols, thresholds, strict=True)},
        }
    return out


def score_model(model: str, texts: list[str]) -> tuple[list[Any], float]:
    """Verdicts of each text (drawn with PIL, the text as the OCR hint)."""
    from model.backends import ScoringInput
    from model.loading import load_backend
    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY, ModelSettings

    policy = load_policy(DEFAULT_POLICY)
    backend = load_backend(ModelSettings(name=model, device="cpu", quant="none"))
    t0 = time.perf_counter()
    items = [ScoringInput(image=render(t, i), ocr_text=t) for i, t in enumerate(texts)]
    verdicts = backend.score(items, policy)
    return list(verdicts), (time.perf_counter() - t0) / max(1, len(texts))


def measure(model: str, n: int) -> dict[str, Any]:
    """The checkpoint `model` through the serving backend, summarised by `summarise`."""
    sets = benign_sets(n)
    harmful = harmful_rows()
    texts = [t for ts in sets.values() for t in ts] + [t for _, t in harmful]
    verdicts, s_per = score_model(model, texts)
    out: dict[str, Any] = {"model": model, "score_s_per_text": round(s_per, 4)}
    flagged = [list(v.flagged) for v in verdicts]
    return out | summarise(sets, harmful, flagged, [dict(v.scores) for v in verdicts])


def summarise(
    sets: dict[str, list[str]],
    harmful: list[tuple[str, str]],
    flagged: list[list[str]],
    scores: list[dict[str, float]],
) -> dict[str, Any]:
    """Benign flagged per source and overall, harmful caught per category and overall, and the
    best-threshold bound, from each text's flagged categories and scores (benign sets first,
    then harmful rows, in order)."""
    out: dict[str, Any] = {}
    i = 0
    by_source: dict[str, float] = {}
    examples: list[str] = []
    n_benign = n_flagged = 0
    for source, ts in sets.items():
        hits = flagged[i : i + len(ts)]
        i += len(ts)
        by_source[source] = round(sum(bool(h) for h in hits) / len(ts), 4)
        n_benign += len(ts)
        n_flagged += sum(bool(h) for h in hits)
        examples += [f"{t} -> {h}" for t, h in zip(ts, hits, strict=True) if h][:3]
    caught: dict[str, list[bool]] = {}
    foreign: list[bool] = []  # bench/demo_foreign.py's phrases alone
    for k, ((cat, _), h) in enumerate(zip(harmful, flagged[i:], strict=True)):
        caught.setdefault(cat, []).append(cat in h)
        if k < N_FOREIGN_HARMFUL:
            foreign.append(cat in h)
    per_cat = {c: round(sum(v) / len(v), 4) for c, v in caught.items()}
    all_caught = [x for v in caught.values() for x in v]
    out["benign_flagged"] = round(n_flagged / n_benign, 4)
    out["benign_n"] = n_benign
    out["benign_flagged_by_source"] = by_source
    out["benign_flagged_examples"] = examples[:12]
    out["harmful_caught"] = round(sum(all_caught) / len(all_caught), 4)
    out["harmful_n"] = len(all_caught)
    out["harmful_caught_by_category"] = per_cat
    out["harmful_caught_demo_foreign_phrases"] = round(sum(foreign) / len(foreign), 4)
    out["best_thresholds"] = best_thresholds(scores[:i], scores[i:], [c for c, _ in harmful])
    return out


def measure_encoder_baseline(n: int) -> dict[str, Any]:
    """A pre-trained text encoder given the demo's own training texts, on the same held-out
    texts: a logistic regression per category (scikit-learn, default settings, flagged at
    0.5) on all-MiniLM-L6-v2 sentence vectors of the SynthMod training split and the benign
    stage's harmless generator texts (the demo recipe's sizes and seed). Nothing here is
    chosen on the held-out texts. It asks whether the demo's training data would be enough
    for a model that arrives already knowing language."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from storage.policy import load_policy
    from storage.settings import DEFAULT_POLICY
    from training.benign import benign_texts
    from training.lexicon import encode_texts
    from training.pretrain import DemoPlan, demo_specs
    from training.recipes import load_recipe

    t0 = time.perf_counter()
    plan = load_recipe("demo").demo or DemoPlan()
    specs = demo_specs(plan, "train", plan.n_train)
    harmless = benign_texts(plan.n_benign, plan.seed)
    x = encode_texts([s.text for s in specs] + [b.text for b in harmless], max_length=64)
    labels = [set(s.labels) for s in specs] + [set()] * len(harmless)
    heads = {}
    for c in (c.id for c in load_policy(DEFAULT_POLICY).categories):
        y = np.array([c in lab for lab in labels])
        if y.sum() >= 5 and not y.all():
            heads[c] = LogisticRegression(max_iter=2000).fit(x.numpy(), y)
    train_s = time.perf_counter() - t0

    sets = benign_sets(n)
    harmful = harmful_rows()
    t1 = time.perf_counter()
    z = encode_texts([t for ts in sets.values() for t in ts] + [t for _, t in harmful], 64)
    probs = {c: h.predict_proba(z.numpy())[:, 1] for c, h in heads.items()}
    scores = [{c: float(p[i]) for c, p in probs.items()} for i in range(len(z))]
    flagged = [[c for c, v in s.items() if v >= 0.5] for s in scores]
    out: dict[str, Any] = {
        "model": "all-MiniLM-L6-v2 + logistic regression per category",
        "train_texts": len(labels),
        "train_s": round(train_s, 1),
        "score_s_per_text": round((time.perf_counter() - t1) / max(1, len(z)), 4),
    }
    return out | summarise(sets, harmful, flagged, scores)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", default=None, help="Default: the shipped demo model.")
    p.add_argument("--new", default=None, help="A second checkpoint to compare (optional).")
    p.add_argument("--n", type=int, default=400, help="Generated harmless texts (never seen).")
    p.add_argument(
        "--encoder-baseline",
        action="store_true",
        help="Also a logistic regression on all-MiniLM-L6-v2 vectors of the demo's training "
        "texts (~4 min on 2 CPU cores).",
    )
    p.add_argument("--results", default=None, help=f"Default: bench/results/{RESULTS_NAME}.")
    a = p.parse_args(argv)
    out_path = provenance.results_or_exit(p, a.results, RESULTS_NAME)
    prov = provenance.start(__file__, argv)
    from model.loading import DEMO_MODEL_DIR

    models = {"old": a.old or str(DEMO_MODEL_DIR)}
    if a.new:
        models["new"] = a.new
    results = {name: measure(m, a.n) for name, m in models.items()}
    if a.encoder_baseline:
        results["encoder_baseline"] = measure_encoder_baseline(a.n)
    payload = {"hardware": prov.summary, "seed": SEED, **results}
    provenance.write_results(out_path, payload, prov)
    print(f"{'model':6} {'benign flagged':>15} {'harmful caught':>15} {'(demo_foreign)':>15}")
    for name, r in results.items():
        print(
            f"{name:6} {r['benign_flagged']:15.3f} {r['harmful_caught']:15.3f} "
            f"{r['harmful_caught_demo_foreign_phrases']:15.3f}"
        )
        for source, rate in r["benign_flagged_by_source"].items():
            print(f"    {source:28} {rate:.3f}")
        for share, b in r["best_thresholds"].items():
            print(
                f"    best thresholds at benign <= {share}: harmful caught "
                f"{b['harmful_caught']:.3f}"
            )
    print(f"-> {out_path}")


if __name__ == "__main__":
    main()
