"""Evaluation metrics on hand-computed cases, and a report written from scored rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage.policy import parse_policy
from training.evaluate import (
    EvalRow,
    average_recall,
    category_metrics,
    compute_report,
    expected_calibration_error,
    read_manifest,
    recall_by_families,
    row_changes,
    unparsable_rate,
    weighted_recall,
    write_report,
)

POLICY = parse_policy(
    {
        "name": "t",
        "categories": [
            {"id": "scam", "title": "Scam", "description": "scam", "threshold": 0.5},
            {"id": "drugs", "title": "Drugs", "description": "drugs", "threshold": 0.4},
            {"id": "csam", "title": "C", "description": "c", "threshold": 0.3, "restricted": True},
        ],
    }
)


def test_category_metrics_hand_computed() -> None:
    # truth / prediction per item:
    #   1: {scam}        / {scam}          scam tp
    #   2: {scam}        / {}              scam fn, safe fp
    #   3: {}            / {scam}          scam fp, safe fn
    #   4: {drugs}       / {drugs, scam}   drugs tp, scam fp
    #   5: {}            / {}              safe tp
    truth = [{"scam"}, {"scam"}, set(), {"drugs"}, set()]
    pred = [{"scam"}, set(), {"scam"}, {"drugs", "scam"}, set()]
    m = category_metrics(truth, pred, ["scam", "drugs", "csam"])
    assert (m["scam"].tp, m["scam"].fp, m["scam"].fn) == (1, 2, 1)
    assert m["scam"].precision == pytest.approx(1 / 3)
    assert m["scam"].recall == pytest.approx(1 / 2)
    assert m["scam"].f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert m["drugs"].recall == 1.0 and m["drugs"].precision == 1.0
    assert (m["safe"].tp, m["safe"].fp, m["safe"].fn) == (1, 1, 1)
    assert m["csam"].recall is None and m["csam"].precision is None and m["csam"].support == 0
    # average over categories with support: scam 0.5, drugs 1.0, safe 0.5
    assert average_recall(m) == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    # weighted: tp 1 + 1 + 1 over support 2 + 1 + 2
    assert weighted_recall(m) == pytest.approx(3 / 5)


def test_ece_hand_computed() -> None:
    # bin [0.9,1.0]: probs 0.9, 0.9 with outcomes 1, 0 -> |0.9 - 0.5| * 2/4
    # bin [0.1,0.2): prob 0.1 outcome 0 -> |0.1 - 0| * 1/4 ; bin [0.6,0.7): 0.6 outcome 1 -> 0.4/4
    ece = expected_calibration_error([0.9, 0.9, 0.1, 0.6], [True, False, False, True])
    assert ece == pytest.approx(0.4 * 0.5 + 0.1 * 0.25 + 0.4 * 0.25)
    assert expected_calibration_error([1.0], [True]) == pytest.approx(0.0)
    assert expected_calibration_error([], []) is None


def test_unparsable_rate_counts_only_asked() -> None:
    assert unparsable_rate([True, False, None, False]) == pytest.approx(2 / 3)
    assert unparsable_rate([None, None]) is None


def test_report_subsets_and_html(tmp_path: Path) -> None:
    rows = [
        EvalRow(tmp_path / "a.png", ("scam",), variant="clean"),
        EvalRow(tmp_path / "b.png", ("scam",), variant="leetspeak"),
        EvalRow(tmp_path / "c.png", (), variant="leetspeak", retention=True),
        EvalRow(tmp_path / "d.png", ("drugs",), variant="clean", retention=True),
    ]
    scores = [
        {"scam": 0.9, "drugs": 0.1, "csam": 0.0},
        {"scam": 0.2, "drugs": 0.1, "csam": 0.0},  # missed on the adversarial variant
        {"scam": 0.1, "drugs": 0.45, "csam": 0.0},  # drugs over its 0.4 threshold: false flag
        {"scam": 0.1, "drugs": 0.8, "csam": 0.0},
    ]
    rep = compute_report("m", rows, scores, POLICY)
    # adversarial rows b, c: scam fn, safe fn -> weighted recall 0 / 2
    assert rep.adversarial_recall == 0.0
    # retention rows c, d: drugs recall 1, safe recall 0 -> 0.5
    assert rep.retention == pytest.approx(0.5)
    assert rep.per_variant["clean"] == pytest.approx(1.0)
    s = rep.summary()
    json.dumps(s)  # JSON-ready for the registry
    assert s["per_category"]["scam"]["recall"] == pytest.approx(0.5)
    out = write_report([rep], tmp_path / "r.html")
    html = out.read_text()
    assert "Recall per category" in html and "plotly" in html


def test_recall_by_families_splits_rows_by_phrase_family(tmp_path: Path) -> None:
    rows = [
        EvalRow(tmp_path / "a.png", ("scam",), family="scam.en.0"),
        EvalRow(tmp_path / "b.png", ("scam",), family="scam.en.1"),
        EvalRow(tmp_path / "c.png", (), family="safe.en.0"),
    ]
    scores = [
        {"scam": 0.9, "drugs": 0.0, "csam": 0.0},  # found
        {"scam": 0.1, "drugs": 0.0, "csam": 0.0},  # missed
        {"scam": 0.1, "drugs": 0.0, "csam": 0.0},  # safe, left alone
    ]
    rep = compute_report("m", rows, scores, POLICY)
    split = recall_by_families(rep, POLICY, {"scam.en.0", "safe.en.0"})
    # in: scam recall 1 (a), safe recall 1 (c) -> 1.0; other: b alone, scam recall 0
    assert split["in_families"] == {"n": 2, "average_recall": pytest.approx(1.0)}
    assert split["other_families"] == {"n": 1, "average_recall": pytest.approx(0.0)}
    assert recall_by_families(rep, POLICY, set())["in_families"]["n"] == 0


def test_read_manifest_resolves_paths_and_rejects_bad_rows(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    m.write_text(
        json.dumps({"path": "x.png", "labels": ["scam"], "rendered_text": "WIN", "variant": "blur"})
        + "\n"
    )
    rows = read_manifest(m, POLICY)
    assert rows[0].path == tmp_path / "x.png" and rows[0].ocr_text == "WIN"
    m.write_text(json.dumps({"path": "x.png", "labels": ["nope"]}) + "\n")
    from storage.errors import WardenError

    with pytest.raises(WardenError, match="unknown category"):
        read_manifest(m, POLICY)


def test_report_counts_benign_flags_on_all_and_retention_rows_and_keeps_per_row_outcomes(
    tmp_path: Path,
) -> None:
    rows = [
        EvalRow(tmp_path / "a.png", ()),  # harmless, flagged scam
        EvalRow(tmp_path / "b.png", ()),  # harmless, left alone
        EvalRow(tmp_path / "c.png", (), retention=True),  # harmless, flagged drugs
        EvalRow(tmp_path / "d.png", (), retention=True),  # harmless, left alone
        EvalRow(tmp_path / "e.png", ("scam",), retention=True, key="k-e"),  # found
    ]
    scores = [
        {"scam": 0.9, "drugs": 0.1, "csam": 0.0},
        {"scam": 0.1, "drugs": 0.1, "csam": 0.0},
        {"scam": 0.1, "drugs": 0.5, "csam": 0.0},
        {"scam": 0.1, "drugs": 0.1, "csam": 0.0},
        {"scam": 0.9, "drugs": 0.1, "csam": 0.0},
    ]
    sources = ["manifest", "manifest", "rapidocr", "rapidocr", "none"]
    rep = compute_report("m", rows, scores, POLICY, ocr_sources=sources)
    assert rep.benign_flag_rate == pytest.approx(2 / 4)
    assert rep.retention_benign_flag_rate == pytest.approx(1 / 2)
    assert rep.n_retention == 3
    assert rep.ocr_sources == {"manifest": 2, "rapidocr": 2, "none": 1}
    s = rep.summary()
    json.dumps(s)
    assert [r["id"] for r in s["rows"]] == [str(tmp_path / f"{c}.png") for c in "abcd"] + ["k-e"]
    assert s["rows"][2] == {
        "id": str(tmp_path / "c.png"),
        "labels": [],
        "predicted": ["drugs"],
        "retention": True,
    }
    assert s["benign_flag_rate"] == pytest.approx(0.5) and s["n_retention"] == 3
    assert [p["ocr_source"] for p in rep.predictions] == sources
    with pytest.raises(ValueError, match="OCR sources"):
        compute_report("m", rows, scores, POLICY, ocr_sources=sources[:2])


def test_manifest_rows_without_text_have_none_not_empty_text(tmp_path: Path) -> None:
    m = tmp_path / "m.jsonl"
    lines = [
        {"path": "a.png", "labels": []},  # no text: OCR must read it
        {"path": "b.png", "labels": [], "rendered_text": ""},  # text known to be empty
    ]
    m.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    a, b = read_manifest(m, POLICY)
    assert a.ocr_text is None and b.ocr_text == ""


def test_unknown_ocr_mode_is_a_clear_error(tmp_path: Path) -> None:
    from storage.errors import WardenError
    from training.evaluate import evaluate_backend

    with pytest.raises(WardenError, match="OCR mode 'tesseract'"):
        evaluate_backend(None, POLICY, [EvalRow(tmp_path / "a.png", ())], ocr="tesseract")  # type: ignore[arg-type]


def test_row_changes_lists_the_costs_row_by_row_and_counts_the_gains() -> None:
    def row(i: str, labels: list[str], predicted: list[str], **kw: object) -> dict:
        return {"id": i, "labels": labels, "predicted": predicted, **kw}

    live = [
        row("a", ["scam", "drugs"], ["scam", "drugs"], ocr_text="Casino bug: deposit $120"),
        row("b", ["drugs"], [], family="f1"),
        row("c", [], [], family="parcel", ocr_text="Your parcel was delivered"),
        row("d", [], ["scam"], family="garden"),
        row("e", [], [], family="parcel"),
        row("f", ["scam"], ["scam"]),
    ]
    cand = [
        row("a", ["scam", "drugs"], ["drugs"], scores={"scam": 0.2, "drugs": 0.9}),
        row("b", ["drugs"], ["drugs"]),
        row("c", [], ["drugs"], scores={"scam": 0.1, "drugs": 0.7}),
        row("d", [], []),
        row("e", [], []),
        row("f", ["scam"], ["scam", "drugs"]),
    ]
    ch = row_changes(live, list(reversed(cand)), text_chars=10)
    assert (ch["n_harmful"], ch["n_benign"]) == (3, 3)
    assert ch["harmful_rows_losing_a_category"] == 1 and ch["categories_lost"] == {"scam": 1}
    assert ch["harmful_rows_gaining_a_category"] == 1 and ch["categories_gained"] == {"drugs": 1}
    # a false flag on a harmful row ("f" gains drugs, not a true label) is neither
    assert (ch["benign_newly_flagged"], ch["benign_no_longer_flagged"]) == (1, 1)
    assert ch["benign_by_family"] == {
        "garden": {"n": 1, "newly_flagged": 0, "no_longer_flagged": 1},
        "parcel": {"n": 2, "newly_flagged": 1, "no_longer_flagged": 0},
    }
    (lost,) = ch["lost_rows"]
    assert lost["id"] == "a" and lost["lost"] == ["scam"] and lost["text"] == "Casino bug…"
    assert lost["candidate_scores"] == {"drugs": 0.9, "scam": 0.2} and "live_scores" not in lost
    (flagged,) = ch["newly_flagged_rows"]
    assert flagged["id"] == "c" and flagged["candidate"] == ["drugs"]
    assert flagged["text"] == "Your parce…"
    assert row_changes(live, cand, keep=0)["lost_rows"] == []
    with pytest.raises(ValueError, match="differ"):
        row_changes(live, cand[:-1])
