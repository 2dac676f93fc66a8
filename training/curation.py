"""Curation rules that turn the decision ledger into training data (pure: no database, no torch).

- conflict resolution: among an item's live decisions (retractions remove what they retract),
  the highest reviewer role wins (admin > engineer > moderator > annotator > import), the
  latest within a role; several Label Studio annotators on one item vote per category
  (agreement = share of annotators who agree with the result);
- restricted content is excluded: any decision or any prediction over threshold naming a
  restricted category drops the item;
- dedup: the same image (view/blob sha256), or a near-identical one (pHash within a distance)
  carrying the same text, is kept once; a golden item always wins its group. A post or video
  is keyed by its ordered media (`media_key`: every medium's sha256, in order), so two posts
  that share a cover are two items, and its near-duplicate is a post of as many media, each
  the same or within the pHash distance, with the same text;
- hard-example mining: the latest prediction disagrees with the resolved labels, or some
  category's score lies within `margin` of its threshold;
- class balance: classes (first label, or "safe") larger than `cap_factor` x the median class
  are downsampled; hard examples are never dropped;
- golden set: frozen (items already golden stay golden), topped up by a stratified draw;
- stratified validation split;
- no image in two splits: items that share a medium (a post reusing another item's image)
  follow each other into the held-out split (`linked`), so golden's and validation's images
  are never trained on through another post.

`training.dataset.build_dataset` applies these to rows read from the ledger.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from statistics import median

from storage.policy import SAFE, Policy

ROLE_RANK: dict[str, int] = {"admin": 4, "engineer": 3, "moderator": 2, "annotator": 1, "import": 0}
# Decisions by people outside Warden's users carry no role: infer one from the source.
SOURCE_ROLE: dict[str, str] = {
    "moderator": "moderator",
    "bulk": "moderator",
    "loop": "moderator",
    "label_studio": "annotator",
    "import": "import",
}


@dataclass(frozen=True)
class LedgerDecision:
    id: int
    categories: tuple[str, ...]
    action: str  # label | retract
    source: str
    role: str
    reviewer: str | None
    created_at: datetime
    supersedes_id: int | None = None


@dataclass(frozen=True)
class LedgerPrediction:
    scores: Mapping[str, float]
    flagged: tuple[str, ...]
    model_version: str
    ocr_text: str | None
    created_at: datetime


@dataclass(frozen=True)
class LedgerItem:
    item_id: int
    key: str  # sha256 of the image the model sees (view derivative, else original blob)
    phash: str | None
    text: str | None
    decisions: tuple[LedgerDecision, ...]
    predictions: tuple[LedgerPrediction, ...] = ()  # oldest first
    meta: Mapping[str, object] = field(default_factory=dict)

    @property
    def latest_prediction(self) -> LedgerPrediction | None:
        return self.predictions[-1] if self.predictions else None


@dataclass(frozen=True)
class Resolution:
    labels: tuple[str, ...]
    decision_id: int
    role: str
    agreement: float | None  # share of same-role annotators agreeing; None when one reviewer
    conflict: bool  # live decisions disagreed


@dataclass(frozen=True)
class CuratedMedium:
    """One image of a post or frame of a video in a dataset row, as the scorer labels it."""

    key: str  # sha256 of the view the model sees (the blob store's key)
    position: int
    kind: str = "image"  # image | frame
    label: str = "Image 1"  # "Image 2", "Frame 3 (1.5 s)": the prompt's name for it
    timestamp_s: float | None = None
    ocr_text: str = ""  # this medium's OCR text (the prompt's labelled line)


@dataclass(frozen=True)
class CuratedItem:
    key: str
    item_id: int | None
    labels: tuple[str, ...]
    ocr_text: str
    text: str | None
    phash: str | None = None
    role: str = "import"
    agreement: float | None = None
    conflict: bool = False
    hard: bool = False
    model_flagged: tuple[str, ...] | None = None  # latest prediction's flags
    variant: str = "clean"
    family: str | None = None
    origin: str = "ledger"  # ledger | replay:<dataset> | replay:synth
    split: str = "train"
    # Every medium in order (cover first) for an item of several media (a post, a video's
    # frames); () for a single image, which is `key` (the N = 1 case, as the scorer has it).
    media: tuple[CuratedMedium, ...] = ()
    # Each medium's pHash, in the order of `media` (None where none is stored): the
    # near-duplicate test of an item of several media; () for a single image (`phash`).
    media_phash: tuple[str | None, ...] = ()

    @property
    def primary(self) -> str:
        return self.labels[0] if self.labels else SAFE

    @property
    def cover(self) -> str:
        """The sha256 of the item's first image (its `key` for a single image)."""
        return self.media[0].key if self.media else self.key

    @property
    def media_keys(self) -> tuple[str, ...]:
        """Every medium's sha256 in order; (key,) for a single image."""
        return tuple(m.key for m in self.media) if self.media else (self.key,)


def media_key(keys: Sequence[str]) -> str:
    """The key of an item of several media: sha256 over its media's sha256s in order, so two
    posts are one item exactly when they hold the same images in the same order."""
    return hashlib.sha256(("media:" + "\n".join(keys)).encode()).hexdigest()


AgreementFn = Callable[[Sequence[Sequence[str]]], Mapping[str, float]]


def role_of(source: str, user_role: str | None) -> str:
    if user_role in ROLE_RANK:
        return user_role  # type: ignore[return-value]
    return SOURCE_ROLE.get(source, "import")


def live_decisions(decisions: Iterable[LedgerDecision]) -> list[LedgerDecision]:
    """Label decisions that no retraction withdrew."""
    decisions = list(decisions)
    retracted = {d.supersedes_id for d in decisions if d.action == "retract"}
    return [d for d in decisions if d.action == "label" and d.id not in retracted]


def majority_agreement(label_sets: Sequence[Sequence[str]]) -> dict[str, float]:
    """Per category, the share of annotators who chose it (Label Studio overlap)."""
    n = len(label_sets)
    counts = Counter(c for labels in label_sets for c in set(labels))
    return {c: k / n for c, k in counts.items()}


def resolve_labels(
    decisions: Iterable[LedgerDecision], agreement: AgreementFn | None = None
) -> Resolution | None:
    """Resolve an item's live decisions to one label set; None when nothing live remains."""
    live = live_decisions(decisions)
    if not live:
        return None
    top = max(ROLE_RANK.get(d.role, 0) for d in live)
    same_role = sorted(
        (d for d in live if ROLE_RANK.get(d.role, 0) == top), key=lambda d: (d.created_at, d.id)
    )
    latest = same_role[-1]
    conflict = len({tuple(sorted(d.categories)) for d in live}) > 1
    # Several distinct Label Studio annotators (overlap > 1): vote per category on each
    # annotator's latest answer instead of letting the last one to submit win.
    by_reviewer: dict[str, LedgerDecision] = {}
    for d in same_role:
        if d.source == "label_studio" and d.reviewer:
            by_reviewer[d.reviewer] = d
    if len(by_reviewer) > 1:
        sets = [list(d.categories) for d in by_reviewer.values()]
        shares = (agreement or majority_agreement)(sets)
        labels = tuple(sorted(c for c, s in shares.items() if s > 0.5))
        agree = min((max(s, 1 - s) for s in shares.values()), default=1.0)
        return Resolution(labels, latest.id, latest.role, agree, conflict)
    return Resolution(tuple(latest.categories), latest.id, latest.role, None, conflict)


def restricted_reason(item: LedgerItem, policy: Policy) -> str | None:
    """Why an item may never enter a training set, or None."""
    restricted = policy.restricted_ids
    for d in item.decisions:
        hit = restricted.intersection(d.categories)
        if hit:
            return f"decision {d.id} names {sorted(hit)[0]}"
    for p in item.predictions:
        for cat in restricted:
            thr = policy.category(cat).threshold
            if float(p.scores.get(cat, 0.0)) >= thr:
                return f"prediction by {p.model_version} scores {cat} over threshold"
    return None


def is_hard(
    labels: Sequence[str], prediction: LedgerPrediction | None, policy: Policy, margin: float
) -> bool:
    """Model wrong (flags differ from the labels) or unsure (a score within `margin` of its
    category's threshold)."""
    if prediction is None:
        return False
    flagged = set(policy.flagged(prediction.scores))
    if flagged != set(labels):
        return True
    return any(
        abs(float(prediction.scores.get(c.id, 0.0)) - c.threshold) < margin
        for c in policy.categories
    )


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def _norm_text(item: CuratedItem) -> str:
    return " ".join(f"{item.text or ''} {item.ocr_text}".lower().split())


def dedup(
    items: Sequence[CuratedItem], *, max_distance: int, golden: set[str]
) -> tuple[list[CuratedItem], dict[str, str]]:
    """Keep one item per duplicate group; returns (kept, {dropped key: kept key}).

    Same key (sha256; for a post or video `media_key`, its ordered media) is a duplicate. A
    pHash within `max_distance` is a duplicate only when the text (caption + OCR) is the same
    too: text-on-plain-background renders share pHashes across different words. An item of
    several media is a near-duplicate only of one with as many media, each medium the same
    image or within the distance, and the same text; never of a single image. Priority inside
    a group: golden, then higher reviewer role, then first seen.
    """
    order = sorted(
        range(len(items)),
        key=lambda i: (items[i].key not in golden, -ROLE_RANK.get(items[i].role, 0), i),
    )
    kept: list[tuple[int, CuratedItem]] = []
    by_key: dict[str, CuratedItem] = {}
    by_text: dict[str, list[CuratedItem]] = defaultdict(list)
    # Items of several media by (text, number of media): compared medium by medium.
    by_post: dict[tuple[str, int], list[CuratedItem]] = defaultdict(list)
    dropped: dict[str, str] = {}
    for i in order:
        it = items[i]
        if it.key in by_key:
            dropped.setdefault(it.key, it.key)
            continue
        twin = None
        if it.media:
            group = by_post[(_norm_text(it), len(it.media))]
            twin = next((o for o in group if _same_media(it, o, max_distance)), None)
            if twin is not None:
                dropped[it.key] = twin.key
                continue
            kept.append((i, it))
            by_key[it.key] = it
            group.append(it)
            continue
        if it.phash:
            for other in by_text[_norm_text(it)]:
                if other.phash and hamming(it.phash, other.phash) <= max_distance:
                    twin = other
                    break
        if twin is not None:
            dropped[it.key] = twin.key
            continue
        kept.append((i, it))
        by_key[it.key] = it
        by_text[_norm_text(it)].append(it)
    kept.sort(key=lambda pair: pair[0])
    return [it for _, it in kept], dropped


def _same_media(a: CuratedItem, b: CuratedItem, max_distance: int) -> bool:
    """Medium by medium, in order: the same sha256, or pHashes within `max_distance`."""
    pa = a.media_phash or (None,) * len(a.media)
    pb = b.media_phash or (None,) * len(b.media)
    for ma, mb, ha, hb in zip(a.media, b.media, pa, pb, strict=True):
        if ma.key != mb.key and not (ha and hb and hamming(ha, hb) <= max_distance):
            return False
    return True


def linked(items: Sequence[CuratedItem], keys: set[str]) -> set[str]:
    """The keys of `items` in `keys`, and of every item that shares a medium, directly or
    through other items, with one of them or with an image key in `keys`: what must follow
    them into a held-out split. Items of one image share nothing with each other once
    deduplicated, so for them this is `keys` ∩ their keys."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for it in items:
        root = find("item:" + it.key)
        for k in it.media_keys:
            parent[find("image:" + k)] = root
            root = find(root)
    held = {find("item:" + k) for k in keys} | {find("image:" + k) for k in keys}
    return {it.key for it in items if find("item:" + it.key) in held}


def _rng(seed: int, salt: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{seed}:{salt}".encode()).hexdigest()[:16], 16))


def stratified_pick(
    items: Sequence[CuratedItem], fraction: float, seed: int, salt: str
) -> set[str]:
    """Keys of a per-class random share (at least one per class with 3+ items)."""
    by_class: dict[str, list[CuratedItem]] = defaultdict(list)
    for it in items:
        by_class[it.primary].append(it)
    picked: set[str] = set()
    for cls in sorted(by_class):
        members = sorted(by_class[cls], key=lambda it: it.key)
        _rng(seed, f"{salt}:{cls}").shuffle(members)
        k = round(len(members) * fraction)
        if k == 0 and len(members) >= 3 and fraction > 0:
            k = 1
        picked.update(it.key for it in members[:k])
    return picked


def top_up_class(
    items: Sequence[CuratedItem], picked: set[str], cls: str, at_least: int, *, seed: int, salt: str
) -> set[str]:
    """Keys of `items` of primary class `cls` to add to `picked` so it holds `at_least` of them
    (fewer when `items` hold fewer), drawn at random by `seed`; empty when it already does."""
    members = [it for it in items if it.primary == cls]
    return _top_up(members, picked, at_least, _rng(seed, f"{salt}:top-up:{cls}"))


def top_up_label(
    items: Sequence[CuratedItem],
    picked: set[str],
    label: str,
    at_least: int,
    *,
    seed: int,
    salt: str,
) -> set[str]:
    """As `top_up_class`, for the items that carry `label` among their labels (a category's
    support, which is what a per-category recall is measured on)."""
    members = [it for it in items if label in it.labels]
    return _top_up(members, picked, at_least, _rng(seed, f"{salt}:top-up-label:{label}"))


def _top_up(
    members: Sequence[CuratedItem], picked: set[str], at_least: int, rng: random.Random
) -> set[str]:
    members = sorted(members, key=lambda it: it.key)
    need = at_least - sum(1 for it in members if it.key in picked)
    if need <= 0:
        return set()
    fresh = [it for it in members if it.key not in picked]
    rng.shuffle(fresh)
    return {it.key for it in fresh[:need]}


def assign_golden(
    items: Sequence[CuratedItem],
    frozen: set[str],
    *,
    fraction: float,
    seed: int,
    max_size: int | None = None,
) -> set[str]:
    """Frozen golden keys stay; new items top the set up to `fraction` of all items."""
    golden = {it.key for it in items if it.key in frozen}
    target = round(len(items) * fraction)
    if max_size is not None:
        target = min(target, max_size)
    need = target - len(golden)
    if need > 0:
        fresh = [it for it in items if it.key not in frozen]
        share = need / len(fresh) if fresh else 0.0
        golden |= stratified_pick(fresh, share, seed, "golden")
    return golden


def balance(
    items: Sequence[CuratedItem], *, cap_factor: float, seed: int
) -> tuple[list[CuratedItem], int]:
    """Downsample classes larger than cap_factor x median class size; hard items are kept."""
    by_class: dict[str, list[CuratedItem]] = defaultdict(list)
    for it in items:
        by_class[it.primary].append(it)
    if len(by_class) < 2 or cap_factor <= 0:
        return list(items), 0
    cap = max(1, round(cap_factor * median(len(v) for v in by_class.values())))
    keep: set[str] = set()
    for cls, members in by_class.items():
        hard = [it for it in members if it.hard]
        easy = sorted((it for it in members if not it.hard), key=lambda it: it.key)
        _rng(seed, f"balance:{cls}").shuffle(easy)
        room = max(0, cap - len(hard))
        keep.update(it.key for it in hard + easy[:room])
    kept = [it for it in items if it.key in keep]
    return kept, len(items) - len(kept)


def replay_count(n_new: int, ratio: float) -> int:
    """How many replay rows make `ratio` of the final training set."""
    if ratio <= 0 or n_new <= 0:
        return 0
    ratio = min(ratio, 0.95)
    return round(n_new * ratio / (1 - ratio))


def sample_replay(
    pool: Sequence[CuratedItem], n: int, *, exclude: set[str], seed: int
) -> list[CuratedItem]:
    """A class-stratified draw of `n` replay items, never one in `exclude` (golden, new data)."""
    cands = [it for it in pool if it.key not in exclude]
    if n >= len(cands):
        return cands
    by_class: dict[str, list[CuratedItem]] = defaultdict(list)
    for it in sorted(cands, key=lambda it: it.key):
        by_class[it.primary].append(it)
    for cls, members in by_class.items():
        _rng(seed, f"replay:{cls}").shuffle(members)
    out: list[CuratedItem] = []
    # Round-robin over classes so a small replay draw still covers every class.
    while len(out) < n:
        for cls in sorted(by_class):
            if by_class[cls] and len(out) < n:
                out.append(by_class[cls].pop())
    return out


def with_split(items: Iterable[CuratedItem], split: str) -> list[CuratedItem]:
    return [replace(it, split=split) for it in items]


# --- single-label decisions -----------------------------------------------------------------

# A category B is "paired" with A when at least this share of the reference items labelled A
# also carry B, over at least PAIR_MIN_SUPPORT items labelled A.
PAIR_MIN_RATE = 0.05
PAIR_MIN_SUPPORT = 20
# The corrections label every category when their share of harmful items with several labels
# is at least this fraction of the reference's (they label as the policy's data does).
COMPLETE_SHARE = 0.5


def multi_label_share(items: Iterable[CuratedItem]) -> float | None:
    """The share of harmful `items` (any label) that carry several labels; None if none."""
    n_harmful = n_multi = 0
    for it in items:
        if it.labels:
            n_harmful += 1
            n_multi += len(it.labels) > 1
    return n_multi / n_harmful if n_harmful else None


def labels_look_complete(
    corrections: Iterable[CuratedItem], reference: Iterable[CuratedItem]
) -> bool:
    """Whether the corrections label every category an item violates, judged against the
    policy-labelled `reference`: a source whose harmful items carry several labels about as
    often as the reference's does (at least COMPLETE_SHARE of its share) labels completely; one
    that (nearly) never does names the primary violation only."""
    ours, theirs = multi_label_share(corrections), multi_label_share(reference)
    if ours is None or not theirs:
        return False
    return ours >= COMPLETE_SHARE * theirs


def label_pairs(
    items: Iterable[CuratedItem],
    *,
    min_rate: float = PAIR_MIN_RATE,
    min_support: int = PAIR_MIN_SUPPORT,
) -> dict[str, frozenset[str]]:
    """For each category A, the categories the reference `items` label together with A (the
    policy's own co-labels: a drug sale ad is drugs and illegal_ads)."""
    n: Counter[str] = Counter()
    both: Counter[tuple[str, str]] = Counter()
    for it in items:
        labels = set(it.labels)
        for a in labels:
            n[a] += 1
            both.update((a, b) for b in labels if b != a)
    pairs: dict[str, set[str]] = defaultdict(set)
    for (a, b), count in both.items():
        if n[a] >= min_support and count / n[a] >= min_rate:
            pairs[a].add(b)
    return {a: frozenset(bs) for a, bs in pairs.items()}


def unanswered(item: CuratedItem, pairs: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """The categories whose answer a decision with one label leaves unknown.

    Many labelled sources name one category per item (the primary violation): a drug sale ad
    labelled "drugs" says nothing about illegal_ads, and training "No" on illegal_ads for it
    teaches the model to forget illegal ads (issue 18: a turn on 300 such corrections lost
    illegal_ads recall on drug ads it had caught). So for an item with exactly one label A, a
    category paired with A is not answered, unless the analyst removed it from the model's own
    flags (`model_flagged`): that is an explicit "No". The model's own silence on B is no
    answer, even where it flagged A: it missed illegal_ads on those drug ads too, and keeping
    its "No" there brought the forgetting back (bench/HISTORY.md). Items with no label
    (harmless) or several (labelled in full) answer everything.
    """
    if len(item.labels) != 1:
        return frozenset()
    flagged = set(item.model_flagged or ())
    return frozenset(b for b in pairs.get(item.labels[0], ()) if b not in flagged)
