"""`loravet scan` against the local hub: listing by base, --from, results JSONL, resume, summary, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loravet.testing.cli import run_cli
from loravet.testing.hub_repos import tiny_qwen2_config, write_adapter_repo, write_base_repo
from loravet.testing.hub_server import Fault, HubServer

BASE_ID = "tiny/qwen2-base"
KINDS = {"clean": 3, "inert": 2, "wrong-base": 2, "unsafe-pickle": 2, "huge": 1}


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    cfg = tiny_qwen2_config(name=BASE_ID)
    write_base_repo(root / "tiny" / "qwen2-base", cfg)
    wrong = tiny_qwen2_config(layers=3, hidden=96)
    i = 0
    for kind, count in KINDS.items():
        for _ in range(count):
            write_adapter_repo(
                root / "pop" / f"a{i:02d}-{kind}", kind, cfg, BASE_ID, seed=i, wrong_cfg=wrong, huge_bytes=1 << 20
            )
            i += 1
    # an adapter of another base: not listed for BASE_ID
    write_adapter_repo(root / "pop" / "other", "clean", cfg, "someone/else")
    return root


def scan(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = run_cli("scan", *args, "--format", "json", env=env)
    assert proc.stdout, proc.stderr
    return proc, json.loads(proc.stdout)


def test_scan_by_base_lists_the_hubs_adapters_and_summarises(env: dict[str, str], tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    proc, summary = scan(env, "--base", BASE_ID, "--results", str(results), "--workers", "4")
    assert proc.returncode == 1  # unsafe pickles and shape mismatches are over --fail-on high
    assert summary["adapters"] == sum(KINDS.values()) and summary["checked"] == summary["adapters"]
    assert summary["outcomes"]["inert"] == KINDS["inert"]
    assert summary["outcomes"]["fails"] == KINDS["wrong-base"]
    assert summary["unsafe_pickles"]["count"] == KINDS["unsafe-pickle"]
    assert all("os.system" in a["message"] for a in summary["unsafe_pickles"]["adapters"])
    assert summary["findings_by_code"]["shape-mismatch"] == KINDS["wrong-base"]
    assert summary["traced_bases"] == {BASE_ID: sum(KINDS.values()) - KINDS["wrong-base"]}
    worst = summary["worst_offenders"][: KINDS["wrong-base"] + KINDS["unsafe-pickle"]]
    assert {w["spec"].split("-", 1)[1] for w in worst} == {"wrong-base", "unsafe-pickle"}
    lines = results.read_text().splitlines()
    assert len(lines) == summary["adapters"] and "hf:pop/other" not in results.read_text()
    # progress is line-based when stderr is not a terminal
    assert "loravet scan:" in proc.stderr and f"{summary['adapters']}/{summary['adapters']}" in proc.stderr
    assert summary["fetched_bytes"]["per_adapter"] > 0


def test_failing_adapters_are_results_and_from_file_mixes_ids_and_paths(
    env: dict[str, str], hub: HubServer, repos: Path, tmp_path: Path
) -> None:
    hub.faults.append(Fault("pop/a00-clean", status=500))
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# audit\npop/a00-clean\nhf:pop/a01-clean\n\nhf:pop/missing\n"
        f"{repos / 'pop' / 'a03-inert'}\n{tmp_path / 'nowhere'}\n"
    )
    proc, summary = scan(env, "--from", str(listing), "--against", f"hf:{BASE_ID}", "--fail-on", "never", "--quiet")
    assert proc.returncode == 0 and proc.stderr == ""
    assert summary["adapters"] == 5 and summary["errors"]["count"] == 3
    errors = {e["spec"]: e["error"] for e in summary["errors"]["examples"]}
    assert "HTTP 500" in errors["hf:pop/a00-clean"] and "not found" in errors["hf:pop/missing"]
    assert summary["outcomes"]["loads"] == 1 and summary["outcomes"]["inert"] == 1


def test_an_interrupted_scan_resumes_to_the_same_summary(env: dict[str, str], hub: HubServer, tmp_path: Path) -> None:
    full = tmp_path / "full.jsonl"
    _, expected = scan(env, "--base", BASE_ID, "--results", str(full), "--quiet")
    # interrupted after 4 results, the 5th half-written
    part = tmp_path / "part.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:4]) + lines[4][:30])
    hub.reset_stats()
    env2 = {**env, "HF_HOME": str(tmp_path / "other-cache")}
    _, resumed = scan(env2, "--base", BASE_ID, "--results", str(part), "--quiet")
    assert resumed == expected
    infos = [p for p in hub.stats.paths if p.startswith("GET /api/models/pop/")]
    assert len(infos) == sum(KINDS.values()) - 4  # only the adapters not yet done were fetched
    assert len(part.read_text().splitlines()) == sum(KINDS.values())


@pytest.mark.parametrize("fmt", ["md", "html", "table"])
def test_summary_formats(env: dict[str, str], tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"summary.{fmt}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loravet.cli",
            "scan",
            "--base",
            BASE_ID,
            "--quiet",
            "--format",
            fmt,
            "-o",
            str(out),
            "--fail-on",
            "never",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    text = out.read_text()
    assert "Unsafe pickles (2)" in text and "Worst offenders" in text and "shape-mismatch" in text


def test_listing_failure_and_bad_arguments_are_one_line(env: dict[str, str], hub: HubServer) -> None:
    proc = subprocess.run([sys.executable, "-m", "loravet.cli", "scan"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run(
        [sys.executable, "-m", "loravet.cli", "scan", "--base", BASE_ID],
        capture_output=True,
        text=True,
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 2 and "HF_HUB_OFFLINE" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run(
        [sys.executable, "-m", "loravet.cli", "scan", "--base", "nobody/none"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2 and "lists no adapters" in proc.stderr


def _record(i: int) -> dict[str, Any]:
    if i % 7 == 0:
        return {"spec": f"hf:o/a{i}", "status": "error", "error": f"hf:o/a{i}: the hub answered HTTP 500"}
    findings = (
        [{"code": "unsafe-pickle", "severity": "critical", "message": "x imports os.system"}] if i % 5 == 0 else []
    )
    return {
        "spec": f"hf:o/a{i}",
        "status": "checked",
        "adapter": {
            "load_outcome": "inert" if i % 3 == 0 else "loads",
            "findings": findings,
            "fetched_bytes": 10,
            "architecture": {"best_match": "B"},
        },
    }


def test_summary_is_independent_of_arrival_order_and_bounded() -> None:
    import random

    from loravet.scan import summarise

    records = [_record(i) for i in range(300)]
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    one, two = summarise(records, "s").to_json(), summarise(shuffled, "s").to_json()
    assert one == two
    errors = sum(1 for i in range(300) if i % 7 == 0)
    unsafe = sum(1 for i in range(300) if i % 7 and i % 5 == 0)
    assert one["errors"]["count"] == errors and one["errors"]["by_reason"] == {"the hub answered HTTP 500": errors}
    assert one["unsafe_pickles"]["count"] == unsafe and len(one["unsafe_pickles"]["adapters"]) == 50
    assert len(one["worst_offenders"]) == 20 and all(w["worst_severity"] == "critical" for w in one["worst_offenders"])
    assert one["outcomes"]["inert"] == sum(1 for i in range(300) if i % 7 and i % 3 == 0)


def test_read_targets(tmp_path: Path) -> None:
    from loravet.scan import read_targets

    folder = tmp_path / "local" / "ad"
    folder.mkdir(parents=True)
    listing = tmp_path / "t.txt"
    listing.write_text(f"owner/name\nhf:owner/name\n  # comment\n\nhf:x/y@rev  \n{folder}\nowner/name\n")
    assert read_targets(listing) == ["hf:owner/name", "hf:x/y@rev", str(folder)]


def test_default_layout_is_two_processes_only_for_a_large_scan_on_two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    from loravet.scan import scan_layout

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert scan_layout(1000, None, None, False) == (2, 4)  # 8 in flight either way
    assert scan_layout(99, None, None, False) == (1, 8)  # start-up costs more than it saves
    assert scan_layout(1000, None, None, True) == (1, 8)  # a custom check cannot go to another process
    assert scan_layout(1000, 3, 1, False) == (1, 3)  # what the user asks for
    assert scan_layout(1000, 5, None, False) == (2, 5)  # --workers is per process
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert scan_layout(1000, None, None, False) == (1, 8)


def test_worker_processes_give_the_same_summary(env: dict[str, str], tmp_path: Path) -> None:
    _, threads = scan(env, "--base", BASE_ID, "--quiet", "--fail-on", "never")
    _, procs = scan(
        {**env, "HF_HOME": str(tmp_path / "hf2")},
        "--base",
        BASE_ID,
        "--quiet",
        "--fail-on",
        "never",
        "--processes",
        "2",
        "--workers",
        "3",
        "--results",
        str(tmp_path / "p.jsonl"),
    )
    assert procs == threads
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == sum(KINDS.values())


def test_a_small_memory_budget_is_each_adapters_finding_not_the_end_of_the_scan(
    repos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget caps the whole process while one adapter is checked; the pool's threads started under it
    (8 MiB of stack each) failed, and the scan stopped with "internal error: can't start new thread"."""
    from loravet.adapter import limits
    from loravet.scan import run_scan

    monkeypatch.setattr(limits, "ADAPTER_MEMORY_BUDGET_MB", 16)
    folders = sorted(p for p in (repos / "pop").iterdir() if p.is_dir())[:6]
    results = tmp_path / "results.jsonl"
    run = run_scan([str(f) for f in folders], None, results, workers=8, processes=1, quiet=True)
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert run.checked == len(folders) == len(records)


def test_a_scan_where_no_target_could_be_checked_is_exit_2_not_a_pass(env: dict[str, str], tmp_path: Path) -> None:
    """Offline with an empty cache, or a list of paths that are all gone: every target is an error record and
    nothing was vetted. That exited 0, which a CI gate reads as a pass."""
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'gone-a'}\n{tmp_path / 'gone-b'}\n")
    results = tmp_path / "r.jsonl"
    proc = run_cli("scan", "--from", str(listing), "--results", str(results), "--quiet", env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert "nothing could be checked" in line and "gone-a" in line and "Traceback" not in proc.stderr
    assert [json.loads(r)["status"] for r in results.read_text().splitlines()] == ["error", "error"]
