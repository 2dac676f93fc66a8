"""The storage commands of the real `warden` console script, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine

from storage.db import unit_of_work
from storage.decisions import record_decision
from storage.queue import record_prediction
from tests.storage._core_factories import make_item, verdict

WARDEN = Path(sys.executable).with_name("warden")


def _env(data_dir: Path, db_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env["WARDEN_DATA_DIR"] = str(data_dir)
    if db_url:
        env["WARDEN_DATABASE_URL"] = db_url
    return env


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(WARDEN), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def assert_user_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("Error: ") and fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_commands_refuse_an_uninitialised_database(tmp_path: Path) -> None:
    env = _env(tmp_path / "data", None)
    for args in (["users", "list"], ["items", "list"], ["stats"], ["audit", "tail"]):
        assert_user_error(run(env, *args), "run `warden init`")
    assert not (tmp_path / "data" / "warden.db").exists()


def test_init_users_and_errors(tmp_path: Path, db_url: str) -> None:
    env = _env(tmp_path / "data", db_url)
    # No password given and none on stdin: the prompt gives up, nothing is created.
    first = run(env, "init", "--admin-user", "root", stdin="")
    assert first.returncode != 0 and "Traceback" not in first.stderr
    env_pw = dict(env, WARDEN_ADMIN_PASSWORD="rootpass123")
    proc = run(env_pw, "init", "--admin-user", "root")
    assert proc.returncode == 0, proc.stderr
    assert "root created" in proc.stdout and (tmp_path / "data" / "blobs").is_dir()
    again = run(env_pw, "init", "--admin-user", "root")
    assert again.returncode == 0 and "already exists" in again.stdout

    proc = run(
        env,
        "users",
        "add",
        "Alice",
        "--role",
        "moderator",
        "--password-stdin",
        stdin="hunter2hunter2\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert_user_error(
        run(
            env,
            "users",
            "add",
            "alice",
            "--role",
            "moderator",
            "--password-stdin",
            stdin="hunter2hunter2\n",
        ),
        "already exists",
    )
    assert_user_error(
        run(env, "users", "add", "bob", "--role", "wizard", "--password-stdin", stdin="x" * 9),
        "unknown role",
    )
    assert_user_error(
        run(env, "users", "add", "bob", "--role", "annotator", "--password-stdin", stdin="short"),
        "at least",
    )
    assert run(env, "users", "disable", "alice").returncode == 0
    assert_user_error(run(env, "users", "disable", "ghost"), "no user named")
    users = json.loads(run(env, "users", "list", "--json").stdout)
    assert [(u["username"], u["role"], u["disabled"]) for u in users] == [
        ("alice", "moderator", True),
        ("root", "admin", False),
    ]
    human = run(env, "users", "list").stdout
    assert "alice" in human and "disabled" in human
    tail = run(env, "audit", "tail", "-n", "2", "--action", "user.created").stdout.splitlines()
    assert len(tail) == 2 and "alice" in tail[-1]
    cur = run(env, "db", "current")
    # `init` migrates to the newest revision, whatever its name.
    lines = dict(line.split(":", 1) for line in cur.stdout.splitlines() if ":" in line)
    assert cur.returncode == 0 and lines["current"].strip() == lines["head"].strip() != ""


def _seed(engine: Engine) -> dict[str, int]:
    with unit_of_work(engine) as s:
        ids = {
            "gun": make_item(s, status="queued", source="forum"),
            "ok": make_item(s, status="queued", source="chat"),
            "open": make_item(s, status="queued", source="chat"),
        }
        record_prediction(s, ids["gun"], verdict({"weapons": 0.9, "drugs": 0.05}))
        record_prediction(s, ids["ok"], verdict({"weapons": 0.7, "drugs": 0.1}))
        record_decision(
            s,
            item_id=ids["gun"],
            categories=["weapons"],
            source="moderator",
            reviewer="alice",
            note="rifle, for sale",
        )
        record_decision(
            s, item_id=ids["ok"], categories=["weapons"], source="moderator", reviewer="alice"
        )
        record_decision(
            s, item_id=ids["ok"], categories=[], source="label_studio", reviewer="ann", note="toy"
        )
    return ids


def test_items_stats_and_export(tmp_path: Path, db_url: str, engine: Engine) -> None:
    env = _env(tmp_path / "data", db_url)
    assert run(env, "init").returncode == 0
    ids = _seed(engine)

    listed = json.loads(run(env, "items", "list", "--json").stdout)
    assert [i["item_id"] for i in listed] == [ids["open"], ids["ok"], ids["gun"]]
    decided = json.loads(run(env, "items", "list", "--status", "decided", "--json").stdout)
    assert {i["item_id"] for i in decided} == {ids["gun"], ids["ok"]}
    dis = json.loads(run(env, "items", "list", "--disagreement", "--json").stdout)
    assert [i["item_id"] for i in dis] == [ids["ok"]]
    assert "forum" in run(env, "items", "list", "--source", "forum").stdout

    shown = json.loads(run(env, "items", "show", str(ids["ok"]), "--json").stdout)
    assert shown["prediction"]["scores"]["weapons"] == 0.7
    assert [d["categories"] for d in shown["decision_history"]] == [["weapons"], []]
    assert shown["decision"]["reviewer"] == "ann"
    assert [e["action"] for e in shown["audit"]][-2:] == ["decision.recorded"] * 2
    human = run(env, "items", "show", str(ids["gun"]))
    assert human.returncode == 0 and "rifle, for sale" in human.stdout
    assert_user_error(run(env, "items", "show", "999999"), "does not exist")

    stats = json.loads(run(env, "stats", "--json").stdout)
    assert stats["by_status"]["decided"] == 2 and stats["backlog"]["open"] == 1
    assert stats["decisions"]["by_category"] == {"weapons": 1, "safe": 1}
    assert run(env, "stats").returncode == 0

    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"d.{fmt}"
        proc = run(env, "export", "decisions", "--format", fmt, "--out", str(out))
        assert proc.returncode == 0 and "wrote 2 decisions" in proc.stdout, proc.stderr
    rows = list(csv.DictReader((tmp_path / "d.csv").open()))
    assert [(int(r["item_id"]), r["categories"], r["reviewer"]) for r in rows] == [
        (ids["gun"], "weapons", "alice"),
        (ids["ok"], "", "ann"),
    ]
    assert rows[0]["score_weapons"] == "0.9" and rows[1]["ledger_rows"] == "2"
    jl = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert jl[1]["model_scores"] == {"weapons": 0.7, "drugs": 0.1} and jl[1]["safe"]
    table = pq.read_table(tmp_path / "d.parquet").to_pylist()
    assert table[0]["categories"] == ["weapons"] and table[0]["item_source"] == "forum"
    future = run(
        env, "export", "decisions", "--out", str(tmp_path / "f.jsonl"), "--since", "2999-01-01"
    )
    assert "wrote 0 decisions" in future.stdout
    assert_user_error(run(env, "export", "decisions", "--out", str(tmp_path / "x.txt")), "--format")
    assert_user_error(
        run(
            env,
            "export",
            "decisions",
            "--format",
            "csv",
            "--out",
            str(tmp_path / "d.csv"),
            "--since",
            "yesterday",
        ),
        "not a date",
    )


def test_policy_show(tmp_path: Path) -> None:
    env = _env(tmp_path / "data", None)
    data = json.loads(run(env, "policy", "show", "--json").stdout)
    assert data["version"].startswith("warden-default@")
    assert "child_safety" in [c["id"] for c in data["categories"]]
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories:\n  - id: Bad Id\n    title: x\n    description: y\n")
    assert_user_error(run(env, "policy", "show", "--path", str(bad)), "snake_case")
    assert_user_error(
        run(env, "policy", "show", "--path", str(tmp_path / "nope.yaml")), "cannot read policy"
    )


@pytest.mark.slow
def test_audit_tail_follow(tmp_path: Path) -> None:
    env = _env(tmp_path / "data", None)
    assert run(env, "init").returncode == 0
    proc = subprocess.Popen(
        [str(WARDEN), "audit", "tail", "--follow", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        run(
            env,
            "users",
            "add",
            "zed",
            "--role",
            "annotator",
            "--password-stdin",
            stdin="zedzedzed\n",
        )
        line = proc.stdout.readline()
        assert "user.created" in line and "zed" in line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
