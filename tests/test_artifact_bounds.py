"""Large text artifacts are sampled, streamed and bounded: a 200 MB train.jsonl / train.csv beside an adapter
costs seconds and a bounded amount of memory, and the report says that only a sample was read."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loravet.testing.adapters import lora_config_dict


def _adapter(folder: Path) -> Path:
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(lora_config_dict("Qwen/Qwen2.5-0.5B-Instruct", 8, 16,
                                                                             ["q_proj"])))
    return folder


@pytest.mark.slow  # writes 2 x 200 MB
@pytest.mark.parametrize("name", ["train.jsonl", "train.csv"])
def test_a_200_mb_text_artifact_is_sampled_in_bounded_time_and_memory(tmp_path: Path, name: str) -> None:
    folder = _adapter(tmp_path / "big")
    line_text = "this comment is long enough to make the file big " * 4
    with (folder / name).open("w", encoding="utf-8") as fh:
        if name.endswith(".csv"):
            fh.write("body,rule_violation\n")
        n = 0
        while fh.tell() < 200 * 1024 * 1024:
            row = f"{line_text}{n}"
            fh.write(json.dumps({"body": row, "rule_violation": n % 2}) + "\n" if name.endswith(".jsonl")
                     else f"{row},{n % 2}\n")
            n += 1
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "loravet.cli", "check", str(folder), "--format", "json",
                           "--fail-on", "never"],
                          capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    peak_mib = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    assert proc.returncode in (0, 1), proc.stderr
    assert wall < 20 and peak_mib < 1024, (wall, peak_mib)
    out = json.loads(proc.stdout)["adapters"][0]
    art = next(a for a in out["artifacts"] if a["file"] == name)
    assert 0 < art["rows"] < n
    assert "first" in json.dumps(art)  # the report says only a sample was read
