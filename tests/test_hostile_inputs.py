"""Bad input never crashes: a finding, or one line on stderr with exit 2; never a traceback or a hang."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loravet
from loravet.adapter.config import parse_adapter_config
from loravet.adapter.safetensors_file import SafetensorsError, parse_safetensors_header
from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter
from loravet.testing.cli import cli_json, run_cli

BASE = "Qwen/Qwen2.5-0.5B-Instruct"


def _adapter(folder: Path) -> Path:
    entry = lookup_catalog(BASE)
    assert entry is not None
    return write_synthetic_adapter(folder, catalog_architecture(entry), lora_config_dict(BASE, 4, 8, ["q_proj"]))


def _codes(report: loravet.Report) -> set[str]:
    return {f.code for f in report.adapters[0].findings}


def _header(entries: dict[str, object]) -> bytes:
    raw = json.dumps(entries).encode()
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize("content,fragment", [
    ('{"r": 8, "peft_type": "LORA", ', "not valid JSON"),
    ("[1, 2, 3]", "not an object"),
    ("\xff\xfe garbage", "not"),
    ("[" * 5000 + "]" * 5000, "nested"),
])
def test_bad_config_json_is_unreadable_file(tmp_path: Path, content: str, fragment: str) -> None:
    a = _adapter(tmp_path / "a")
    (a / "adapter_config.json").write_bytes(content.encode("utf-8", "surrogateescape")
                                           if "\xff" not in content else b"\xff\xfe garbage")
    report = loravet.check([str(a)])
    f = report.adapters[0].finding("unreadable-file")
    assert f is not None and fragment in f.message


@pytest.mark.parametrize("mutate,fragment", [
    (lambda b: b[:100], "truncated"),
    (lambda b: b"", "too short"),
    (lambda b: struct.pack("<Q", 1 << 40) + b[8:], "header"),
    (lambda b: b + b"\x00" * 4096, "safetensors library refuses it"),  # PEFT raises: not fully covered
])
def test_broken_safetensors(tmp_path: Path, mutate: object, fragment: str) -> None:
    a = _adapter(tmp_path / "a")
    path = a / "adapter_model.safetensors"
    path.write_bytes(mutate(path.read_bytes()))  # type: ignore[operator]
    report = loravet.check([str(a)])
    f = report.adapters[0].finding("unreadable-file")
    assert f is not None and fragment in f.message
    assert report.adapters[0].load_outcome == "fails"


@pytest.mark.parametrize("entries,fragment", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, "overlaps"),
    ({"a": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}, "unknown dtype"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, "needs"),
    ({"a": {"dtype": "F32", "shape": [1 << 30, 1 << 30], "data_offsets": [0, 8]}}, "absurd"),
    ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}, "invalid shape"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, "gap"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}, "needs"),
    ({"a": "x"}, "not an object"),
])
def test_hostile_headers_rejected_before_allocation(entries: dict[str, object], fragment: str) -> None:
    head = _header(entries)
    with pytest.raises(SafetensorsError) as exc:
        parse_safetensors_header(head + b"\x00" * 16, len(head) + 16)
    assert fragment in str(exc.value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzzed_safetensors_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(SafetensorsError):
        parse_safetensors_header(data, len(data))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["r", "lora_alpha", "target_modules", "peft_type", "layers_to_transform",
                                        "rank_pattern", "modules_to_save", "bias", "use_dora", "exclude_modules",
                                        "task_type", "init_lora_weights", "layers_pattern"]), json_values))
def test_fuzzed_configs_never_crash(data: dict[str, object]) -> None:
    cfg = parse_adapter_config(data)
    from loravet.base.resolve import resolve_base
    from loravet.checks.peft_load import predict_load

    predict_load(cfg, None, resolve_base(BASE).architecture)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_fuzzed_header_json_never_crashes_cli_path(tmp_path_factory: pytest.TempPathFactory, value: object) -> None:
    folder = _adapter(tmp_path_factory.mktemp("fz"))
    raw = json.dumps(value).encode()
    (folder / "adapter_model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    report = loravet.check([str(folder)])
    assert report.adapters[0].load_outcome in ("fails", "inert", "partial", "loads")


def test_missing_path_exits_2_with_one_line() -> None:
    proc = run_cli("check", "/nonexistent/adapter")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_folder_without_adapter_exits_2(tmp_path: Path) -> None:
    proc = run_cli("inspect", str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == "" and "no adapter_config.json" in proc.stderr


def test_bad_option_exits_2() -> None:
    proc = run_cli("check", "x", "--fail-on", "sometimes")
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt"])
def test_zip_escaping_paths_refused(tmp_path: Path, member: str) -> None:
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("adapter_config.json", "{}")
        zf.writestr(member, "x")
    rc, data = cli_json("inspect", str(z))  # the archive's content: a critical finding, not the run's end
    assert rc == 1 and "Traceback" not in json.dumps(data)
    (finding,) = [f for f in data["adapters"][0]["findings"] if f["code"] == "unsafe-archive"]
    assert finding["severity"] == "critical" and member in finding["message"]
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/abs/evil.txt").exists()


def test_zip_symlink_member_refused(tmp_path: Path) -> None:
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("adapter_model.safetensors")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
        zf.writestr("adapter_config.json", "{}")
    rc, data = cli_json("inspect", str(z))
    assert rc == 1
    assert any(f["severity"] == "critical" and "symbolic link" in f["message"]
               for f in data["adapters"][0]["findings"])


def test_zip_of_adapter_works(tmp_path: Path) -> None:
    a = _adapter(tmp_path / "my-adapter")
    z = tmp_path / "my-adapter.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in a.iterdir():
            zf.write(f, f"my-adapter/{f.name}")
    rc, data = cli_json("check", str(z))
    assert rc == 0
    assert data["adapters"][0]["name"] == "my-adapter"
    assert data["adapters"][0]["load_outcome"] == "loads"


def test_symlinked_weights_outside_folder_not_followed(tmp_path: Path) -> None:
    a = _adapter(tmp_path / "a")
    outside = tmp_path / "outside.safetensors"
    (a / "adapter_model.safetensors").rename(outside)
    os.symlink(outside, a / "adapter_model.safetensors")
    report = loravet.check([str(a)])
    f = report.adapters[0].finding("path-escape")
    assert f is not None and "outside" in f.message


def test_nonfinite_weights_found(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import load_file, save_file

    a = _adapter(tmp_path / "a")
    sd = load_file(str(a / "adapter_model.safetensors"))
    key = next(k for k in sd if "lora_B" in k)
    sd[key] = sd[key].copy()
    sd[key][0, 0] = np.nan
    save_file(sd, str(a / "adapter_model.safetensors"))
    report = loravet.check([str(a)])
    f = report.adapters[0].finding("nonfinite-weights")
    assert f is not None and f.severity.label == "critical" and f.evidence["count"] == 1
