"""Rough edges a new user hit on first use (in-process through click's runner: fast, static path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter

BASE = "Qwen/Qwen2.5-0.5B-Instruct"


def _invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from loravet.cli import main

    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def six(tmp_path: Path) -> list[Path]:
    entry = lookup_catalog(BASE)
    assert entry is not None
    arch = catalog_architecture(entry)
    out = []
    for i, name in enumerate(["alpha-adapter-long-name", "beta-adapter", "gamma-lora-for-qwen", "delta",
                              "epsilon-adapter-with-a-very-long-folder-name", "zeta"]):
        out.append(write_synthetic_adapter(tmp_path / name, arch, lora_config_dict(BASE, 4, 8, ["q_proj", "v_proj"]),
                                           seed=i, zero_b=(i == 3)))
    return out


@pytest.mark.parametrize("columns", [100, 80])
def test_compare_of_six_fits_the_terminal_width(six: list[Path], columns: int) -> None:
    # before: the table was always laid out 120 columns wide, so every line wrapped on a narrower terminal
    code, out, err = _invoke(["compare", *map(str, six), "--no-replay", "--format", "table"],
                             env={"COLUMNS": str(columns)})
    assert code in (0, 1), err
    assert "Depend on" in out
    widest = max(len(line) for line in out.splitlines())
    assert widest <= columns, widest


def test_table_width_without_columns_stays_120(six: list[Path]) -> None:
    code, out, err = _invoke(["check", str(six[0]), "--format", "table"], env={"COLUMNS": ""})
    assert code in (0, 1), err
    assert max(len(line) for line in out.splitlines()) <= 120


def test_output_into_a_missing_folder_is_created(six: list[Path], tmp_path: Path) -> None:
    # before: `-o reports/x.json` did all the work, then exited 2 with "cannot write"
    target = tmp_path / "reports" / "nested" / "x.json"
    code, out, err = _invoke(["check", str(six[0]), "-o", str(target)])
    assert code in (0, 1), err
    assert json.loads(target.read_text())["schema"] == "loravet/1"
    assert out == ""


def test_output_that_cannot_be_written_is_one_line(six: list[Path], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, out, err = _invoke(["check", str(six[0]), "-o", str(blocker / "x.json")])
    assert code == 2
    assert out == ""
    assert err.startswith("loravet: cannot write") and err.count("\n") == 1


def test_unsafe_pickle_in_the_weight_file_is_said_once(tmp_path: Path) -> None:
    # before: "adapter_model.bin imports posix.system: not opened; adapter_model.bin imports posix.system (known
    # code execution): never opened" - the weight loader and the pickle scan said the same thing in two wordings
    from loravet.testing.hostile import write_malicious_bin

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(lora_config_dict(BASE, 4, 8, ["q_proj"])))
    canary = tmp_path / "canary"
    write_malicious_bin(folder / "adapter_model.bin", canary)
    code, out, err = _invoke(["check", str(folder), "--format", "json"])
    assert code == 1, err
    assert not canary.exists()
    finding = next(f for f in json.loads(out)["adapters"][0]["findings"] if f["code"] == "unsafe-pickle")
    assert finding["severity"] == "critical"
    assert finding["message"].count("adapter_model.bin imports") == 1, finding["message"]
    assert "never opened" in finding["message"]


@pytest.mark.parametrize("command", [[], ["inspect"], ["check"], ["compare"], ["eval"], ["demo"], ["scan"],
                                     ["explain"], ["bases"]])
def test_help_names_no_folder_a_user_does_not_have(command: list[str]) -> None:
    # the examples named folders only the seed's test fixture builds (./reddit-4b-think, ./SmolLM2-135M-Instruct)
    code, out, err = _invoke([*command, "--help"])
    assert code == 0, err
    for fixture_only in ("reddit-4b-think", "jigsaw-qwen-fold3", "./SmolLM2-135M-Instruct", "the an "):
        assert fixture_only not in out, (command, fixture_only)
    if not command:
        assert "loravet demo --static" in out


def test_readme_names_the_static_dependencies_pyproject_installs() -> None:
    # README listed picklescan (a benchmark-only dev dependency) and not google-re2 (which `pip install .` brings)
    import re
    import tomllib

    root = Path(__file__).resolve().parents[1]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}
    said = re.search(r"needs \w+ small\s+packages \(([^)]*)\)", (root / "README.md").read_text())
    assert said is not None
    listed = {n.strip().lower().replace("_", "-") for n in said.group(1).split(",")}
    assert listed == names


@pytest.mark.peft
def test_replayed_shape_mismatch_names_a_tensor_and_its_shapes(tmp_path: Path) -> None:
    # before: `compare` (which replays) said only "PEFT raises: N tensor(s) do not fit their module's shape",
    # where `check` names the first tensor and both shapes
    pytest.importorskip("peft")
    small, big = "HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct"
    entry = lookup_catalog(big)
    assert entry is not None
    folder = write_synthetic_adapter(tmp_path / "impostor", catalog_architecture(entry),
                                     lora_config_dict(small, 4, 8, ["q_proj"]))
    code, out, err = _invoke(["check", str(folder), "--replay", "--format", "json"])
    assert code == 1, err
    adapter = json.loads(out)["adapters"][0]
    assert adapter["verdict"]["source"] == "replayed"
    finding = next(f for f in adapter["findings"] if f["code"] == "shape-mismatch")
    first = finding["evidence"]["examples"][0]
    assert first["tensor"] in finding["message"]
    assert f"is {first['file_shape']} where the base needs {first['base_shape']}" in finding["message"]
    assert first["file_shape"] != first["base_shape"]


def test_invalid_rank_is_said_once(tmp_path: Path) -> None:
    # before: "r must be a positive integer, got 0; PEFT rejects the config: r must be a positive integer, got 0"
    entry = lookup_catalog(BASE)
    assert entry is not None
    folder = write_synthetic_adapter(tmp_path / "r0", catalog_architecture(entry),
                                     lora_config_dict(BASE, 4, 8, ["q_proj"]))
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["r"] = 0
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    code, out, err = _invoke(["check", str(folder), "--format", "json"])
    assert code == 1, err
    adapter = json.loads(out)["adapters"][0]
    assert adapter["load_outcome"] == "fails" and adapter["scaling"] is None
    message = next(f["message"] for f in adapter["findings"] if f["code"] == "invalid-config")
    assert message.count("r must be a positive integer") == 1, message


def test_demo_into_a_file_is_one_line(tmp_path: Path) -> None:
    # before: "loravet: internal error: FileExistsError: [Errno 17] File exists"
    target = tmp_path / "taken"
    target.write_text("x")
    code, out, err = _invoke(["demo", "--static", str(target)])
    assert code == 2 and out == ""
    assert err == f"loravet: demo: cannot use {target} as the demo folder: it exists and is not a folder\n"


def test_empty_adapter_argument_is_one_line() -> None:
    # before: Path("") is the working directory, walked whole: "internal error: FileNotFoundError" in /tmp
    code, out, err = _invoke(["check", ""])
    assert code == 2 and out == ""
    assert err.startswith("loravet: an empty ADAPTER argument") and err.count("\n") == 1


def test_adapter_nested_three_levels_is_found_and_deeper_is_not(six: list[Path], tmp_path: Path) -> None:
    import shutil

    shallow = tmp_path / "shallow"
    shutil.copytree(six[0], shallow / "a" / "b" / "adapter")
    code, out, err = _invoke(["check", str(shallow), "--format", "json"])
    assert code in (0, 1), err
    assert json.loads(out)["adapters"][0]["name"] == "adapter"
    deep = tmp_path / "deep"
    shutil.copytree(six[0], deep / "a" / "b" / "c" / "adapter")
    code, out, err = _invoke(["check", str(deep)])
    assert code == 2 and "no adapter_config.json" in err


def test_base_folder_without_config_says_what_it_lacks(six: list[Path], tmp_path: Path) -> None:
    # before: "'/path' is not a local model folder, ..." about a folder the user had just named
    empty = tmp_path / "my-base"
    empty.mkdir()
    code, out, err = _invoke(["check", str(six[0]), "--base", str(empty), "--format", "json"])
    assert code == 0, err
    adapter = json.loads(out)["adapters"][0]
    assert adapter["load_outcome"] == "unknown"
    message = next(f["message"] for f in adapter["findings"] if f["code"] == "base-unresolved")
    assert "folder without config.json" in message


def test_scan_summary_titles_stay_on_one_line_and_fit_the_width(six: list[Path], tmp_path: Path) -> None:
    # before: "Adapters by worst" / "severity" over two lines, and the summary always 120 columns wide
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([*map(str, six), str(tmp_path / "missing")]) + "\n")
    code, out, err = _invoke(["scan", "--from", str(listing), "--quiet", "--results", str(tmp_path / "r.jsonl")],
                             env={"COLUMNS": "80"})
    assert code in (0, 1), err
    assert "Adapters by worst severity" in out.splitlines()
    assert max(len(line) for line in out.splitlines()) <= 80
