"""`hf:` adapters and bases checked online against a local hub (loravet.testing.hub_server), header-only.

The real huggingface_hub client talks to the local server through HF_ENDPOINT; each test gets an empty
HF_HOME. Reports must equal the same repositories checked from local folders."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter
from loravet.testing.cli import run_cli
from loravet.testing.hub_repos import tiny_qwen2_config, write_adapter_repo, write_base_repo
from loravet.testing.hub_server import Fault, HubServer

BASE_ID = "tiny/qwen2-base"
CATALOG_BASE = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    cfg = tiny_qwen2_config(name=BASE_ID)
    write_base_repo(root / "tiny" / "qwen2-base", cfg)
    for kind in ("clean", "inert", "unsafe-pickle", "huge"):
        write_adapter_repo(root / "alice" / f"a-{kind}", kind, cfg, BASE_ID, seed=3, huge_bytes=2 << 20)
    wrong = tiny_qwen2_config(layers=3, hidden=96)
    write_adapter_repo(root / "alice" / "a-wrong-base", "wrong-base", cfg, BASE_ID, wrong_cfg=wrong)
    raw = write_adapter_repo(root / "alice" / "a-raw-pickle", "clean", cfg, BASE_ID)
    (raw / "train.pkl").write_bytes(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R." + b"\x00" * 5000)
    entry = lookup_catalog(CATALOG_BASE)
    assert entry is not None
    write_synthetic_adapter(
        root / "bob" / "qwen-small", catalog_architecture(entry), lora_config_dict(CATALOG_BASE, 2, 4, ["v_proj"])
    )
    (root / "Qwen" / "Qwen2.5-0.5B-Instruct").mkdir(parents=True)
    (root / "Qwen" / "Qwen2.5-0.5B-Instruct" / "config.json").write_text("{}")
    return root


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env)


def check_json(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    proc = run(env, "check", *args, "--format", "json", "--fail-on", "never")
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def normalised(report: dict[str, Any], replace: dict[str, str]) -> str:
    """The report without where it was read from (path, source, fetch accounting)."""
    report = json.loads(json.dumps(report))
    for a in report["adapters"]:
        for key in ("path", "source", "fetched_bytes", "fetch"):
            a.pop(key, None)
    text = json.dumps(report, sort_keys=True)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("kind", ["clean", "inert", "unsafe-pickle", "wrong-base"])
def test_check_from_the_hub_equals_the_local_folder(repos: Path, env: dict[str, str], kind: str) -> None:
    base = str(repos / "tiny" / "qwen2-base")
    _, online = check_json(env, f"hf:alice/a-{kind}", "--base", base)
    _, local = check_json(env, str(repos / "alice" / f"a-{kind}"), "--base", base)
    assert normalised(online, {}) == normalised(local, {})
    assert online["adapters"][0]["fetched_bytes"] > 0


def test_compare_and_hub_base_equal_local(repos: Path, env: dict[str, str], hub: HubServer) -> None:
    specs = ["hf:alice/a-clean", "hf:alice/a-inert"]
    online = json.loads(run(env, "compare", *specs, "--base", f"hf:{BASE_ID}", "--format", "json").stdout)
    local = json.loads(
        run(
            env,
            "compare",
            *(str(repos / "alice" / s[9:]) for s in specs),
            "--base",
            str(repos / "tiny" / "qwen2-base"),
            "--format",
            "json",
        ).stdout
    )
    assert [a["load_outcome"] for a in online["adapters"]] == ["loads", "inert"]
    # where the hub base came from and what it cost are in the report; nothing of the kind for a folder
    assert online["adapters"][0]["base"]["fetch"]["commit"] == hub.commit(BASE_ID)
    assert "fetch" not in local["adapters"][0]["base"]
    # the base read by range from the hub is the same base read from its folder
    for a in (*online["adapters"], *local["adapters"]):
        a["base"].pop("name"), a["base"].pop("source"), a["base"].pop("origin", None), a["base"].pop("fetch", None)
    one = normalised(online, {f"hf:{BASE_ID}": "BASE"})
    other = normalised(local, {str((repos / "tiny" / "qwen2-base").resolve()): "BASE"})

    assert one == other, "".join(
        difflib.unified_diff(one.replace(", ", ",\n").splitlines(True), other.replace(", ", ",\n").splitlines(True))
    )
    weights = sum(
        p.stat().st_size
        for p in repos.rglob("*.safetensors")
        if "alice/a-clean" in str(p) or "alice/a-inert" in str(p) or "qwen2-base" in str(p)
    )
    fetched = sum(a["fetched_bytes"] for a in online["adapters"])
    assert fetched < weights  # the base's tensor data never travels (bench/ measures the 1% at real size)


def test_second_run_fetches_nothing_and_offline_works_from_the_cache(env: dict[str, str], hub: HubServer) -> None:
    _, first = check_json(env, "hf:alice/a-clean", "--base", f"hf:{BASE_ID}")
    assert first["adapters"][0]["fetched_bytes"] > 0
    hub.reset_stats()
    _, second = check_json(env, "hf:alice/a-clean", "--base", f"hf:{BASE_ID}")
    assert second["adapters"][0]["fetched_bytes"] == 0
    assert hub.stats.by_kind.get("get", 0) == 0 and hub.stats.by_kind.get("head", 0) == 0, hub.stats.paths
    hub.reset_stats()
    _, offline = check_json({**env, "HF_HUB_OFFLINE": "1"}, "hf:alice/a-clean", "--base", f"hf:{BASE_ID}")
    assert hub.stats.requests == 0
    assert normalised(offline, {}) == normalised(second, {})


def test_each_small_file_is_one_request_into_the_hub_cache(repos: Path, env: dict[str, str], hub: HubServer) -> None:
    """Sizes and blob ids come with the model info: no HEAD before each file, and the file lands where
    huggingface_hub's own client finds it without asking the hub."""
    from huggingface_hub import hf_hub_download

    _, report = check_json(env, "hf:alice/a-clean")
    fetch = report["adapters"][0]["fetch"]
    mine = [p for p in hub.stats.paths if "alice/a-clean" in p]
    assert not [p for p in mine if p.startswith("HEAD")], mine
    files = [p for p in mine if "/resolve/" in p]
    assert "adapter_config.json" in fetch["downloaded"] and "README.md" in fetch["downloaded"]
    assert len(files) == len(fetch["downloaded"]) + len(fetch["ranges"]) and fetch["requests"] == len(mine)
    hub.reset_stats()
    path = hf_hub_download(
        "alice/a-clean",
        "adapter_config.json",
        revision=fetch["commit"],
        cache_dir=Path(env["HF_HOME"]) / "hub",
        endpoint=hub.url,
    )
    assert hub.stats.requests == 0
    assert Path(path).read_bytes() == (repos / "alice" / "a-clean" / "adapter_config.json").read_bytes()


def test_offline_with_an_empty_cache_is_one_line_exit_2(env: dict[str, str], hub: HubServer) -> None:
    proc = run({**env, "HF_HUB_OFFLINE": "1"}, "check", "hf:alice/a-clean")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "HF_HUB_OFFLINE" in proc.stderr
    assert hub.stats.requests == 0


FAULTS = {
    "401": (Fault("alice/a-clean", status=401), "HTTP 401"),
    "403": (Fault("alice/a-clean", status=403), "HTTP 403"),
    "gated": (Fault("alice/a-clean", gated=True), "gated"),
    "500": (Fault("alice/a-clean", status=500), "HTTP 500"),
    "timeout": (Fault("alice/a-clean", latency=3.0), "did not answer"),
    "truncated": (Fault("alice/a-clean", truncate=10, only="files"), "cut short"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_each_fault_is_one_clear_line(env: dict[str, str], hub: HubServer, name: str) -> None:
    fault, words = FAULTS[name]
    hub.faults.append(fault)
    proc = run({**env, "LORAVET_HUB_TIMEOUT": "1"}, "check", "hf:alice/a-clean")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("spec", "words"), [("hf:alice/nope", "not found"), ("hf:alice/a-clean@v9", "revision 'v9' does not exist")]
)
def test_missing_repo_and_revision(env: dict[str, str], spec: str, words: str) -> None:
    proc = run(env, "check", spec)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr


def test_base_metadata_unavailable_is_a_finding_saying_what_was_assumed(env: dict[str, str], hub: HubServer) -> None:
    hub.faults.append(Fault(CATALOG_BASE, status=401))
    proc = run(
        env, "check", "hf:bob/qwen-small", "--base", f"hf:{CATALOG_BASE}", "--format", "json", "--fail-on", "never"
    )
    assert proc.returncode == 0, proc.stderr
    adapter = json.loads(proc.stdout)["adapters"][0]
    finding = next(f for f in adapter["findings"] if f["code"] == "base-metadata-unavailable")
    assert "401" in finding["message"] and "assumed the built-in catalog" in finding["message"]
    assert adapter["load_outcome"] == "loads"
    # no catalog entry to fall back on: the base is unresolved, with the hub's answer as the reason
    hub.faults[:] = [Fault(BASE_ID, status=500)]
    proc = run(env, "check", "hf:alice/a-clean", "--base", f"hf:{BASE_ID}", "--format", "json", "--fail-on", "never")
    adapter = json.loads(proc.stdout)["adapters"][0]
    assert adapter["load_outcome"] == "unknown"
    assert "HTTP 500" in next(f for f in adapter["findings"] if f["code"] == "base-unresolved")["message"]


@pytest.mark.parametrize("cap", ["1000", None], ids=["over-the-cap", "default-header-only"])
def test_weights_over_the_values_cap_are_read_header_only(
    repos: Path, env: dict[str, str], hub: HubServer, cap: str | None
) -> None:
    env = {k: v for k, v in env.items() if k != "LORAVET_HUB_VALUES_CAP"}  # None: the default, no tensor data
    if cap is not None:
        env["LORAVET_HUB_VALUES_CAP"] = cap
    proc = run(
        env,
        "check",
        "hf:alice/a-inert",
        "--base",
        str(repos / "tiny" / "qwen2-base"),
        "--format",
        "json",
        "--fail-on",
        "never",
    )
    adapter = json.loads(proc.stdout)["adapters"][0]
    size = (repos / "alice" / "a-inert" / "adapter_model.safetensors").stat().st_size
    assert adapter["weights"]["bytes"] == size and adapter["keys"]["matched"] == adapter["weights"]["tensors"]
    # zero lora_B cannot be seen from a header: unknown, never a wrong "loads"
    assert adapter["load_outcome"] == "unknown"
    assert any(f["code"] == "weights-header-only" for f in adapter["findings"])
    assert "adapter_model.safetensors" not in adapter["fetch"]["downloaded"]
    assert any(r.startswith("adapter_model.safetensors:0-") for r in adapter["fetch"]["ranges"])


def test_big_pickle_zip_is_scanned_by_range_reads(repos: Path, env: dict[str, str], hub: HubServer) -> None:
    proc = run(
        {**env, "LORAVET_HUB_ARTIFACT_CAP": "100", "LORAVET_HUB_OTHER_CAP": "100"},
        "check",
        "hf:alice/a-unsafe-pickle",
        "--format",
        "json",
        "--fail-on",
        "never",
    )
    adapter = json.loads(proc.stdout)["adapters"][0]
    codes = {f["code"]: f for f in adapter["findings"]}
    assert codes["unsafe-pickle"]["severity"] == "critical" and "os.system" in codes["unsafe-pickle"]["message"]
    assert "training_args.bin" in codes["remote-not-fetched"]["evidence"]["files"]
    # huge optimizer.pt: its pickle member is read, never its 2 MiB of tensor data
    hub.reset_stats()
    _, huge = check_json(env, "hf:alice/a-huge")
    assert huge["adapters"][0]["fetched_bytes"] < 200_000 and hub.stats.bytes < 400_000


def test_hf_token_is_sent_for_a_private_repo(env: dict[str, str], hub: HubServer) -> None:
    hub.tokens["alice/a-clean"] = "hf_secret"
    proc = run(env, "check", "hf:alice/a-clean", "--fail-on", "never")
    assert proc.returncode == 2 and "HF_TOKEN" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run({**env, "HF_TOKEN": "hf_secret"}, "check", "hf:alice/a-clean", "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr


def test_proxies_are_honoured_and_no_proxy_is_one_line(env: dict[str, str], hub: HubServer) -> None:
    """The endpoint's host does not resolve: only the proxy (the local hub, which accepts absolute URIs,
    as a forward proxy does) gets the requests through. No socket probe second-guesses it."""
    e = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
    e["HF_ENDPOINT"] = "http://hub.invalid"
    proc = run({**e, "HTTP_PROXY": hub.url}, "check", "hf:alice/a-clean", "--fail-on", "never")
    assert proc.returncode == 0, proc.stderr
    assert any(p.startswith("GET /api/models/alice/a-clean") for p in hub.stats.paths)
    proc = run(e, "check", "hf:alice/a-clean")
    assert proc.returncode == 2 and "cannot reach http://hub.invalid" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_raw_pickle_over_the_caps_is_flagged_never_skipped_silently(env: dict[str, str]) -> None:
    proc = run(
        {**env, "LORAVET_HUB_ARTIFACT_CAP": "1000"},
        "check",
        "hf:alice/a-raw-pickle",
        "--format",
        "json",
        "--fail-on",
        "never",
    )
    adapter = json.loads(proc.stdout)["adapters"][0]
    unread = next(f for f in adapter["findings"] if f["code"] == "unreadable-file")
    assert unread["severity"] == "high" and "train.pkl" in unread["message"] and "not scanned" in unread["message"]
    # under the cap it is downloaded and the local pipeline scans it like any folder's file
    _, fetched = check_json(env, "hf:alice/a-raw-pickle")
    assert any(f["code"] == "unsafe-pickle" for f in fetched["adapters"][0]["findings"])


def test_without_sizes_in_model_info_each_file_is_sized_before_it_is_fetched(
    repos: Path, env: dict[str, str], hub: HubServer
) -> None:
    hub.sizes = False
    hub.reset_stats()
    base = str(repos / "tiny" / "qwen2-base")
    _, online = check_json({**env, "LORAVET_HUB_OTHER_CAP": "100"}, "hf:alice/a-huge", "--base", base)
    assert online["adapters"][0]["fetched_bytes"] < 200_000  # the 2 MiB optimizer.pt was still not downloaded
    assert hub.stats.bytes < 400_000
    _, local = check_json(env, str(repos / "alice" / "a-huge"), "--base", base)
    assert online["adapters"][0]["load_outcome"] == local["adapters"][0]["load_outcome"] == "loads"


def test_a_torch_bin_over_the_values_cap_is_read_from_its_central_directory(
    repos: Path, env: dict[str, str], hub: HubServer
) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.numpy import load_file

    folder = repos / "alice" / "a-bin"
    if not folder.exists():
        write_adapter_repo(folder, "clean", tiny_qwen2_config(name=BASE_ID), BASE_ID, seed=5)
        tensors = load_file(str(folder / "adapter_model.safetensors"))
        torch.save({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, folder / "adapter_model.bin")
        (folder / "adapter_model.safetensors").unlink()
    base = str(repos / "tiny" / "qwen2-base")
    _, local = check_json(env, str(folder), "--base", base)
    hub.reset_stats()
    _, online = check_json({**env, "LORAVET_HUB_VALUES_CAP": "100"}, "hf:alice/a-bin", "--base", base)
    got, want = online["adapters"][0], local["adapters"][0]
    assert got["keys"] == want["keys"] and got["weights"] == want["weights"] and want["load_outcome"] == "loads"
    assert got["load_outcome"] == "unknown" and any(f["code"] == "weights-header-only" for f in got["findings"])
    assert "adapter_model.bin" not in got["fetch"]["downloaded"]


def test_a_base_named_only_by_the_adapter_config_is_fetched_from_the_hub(
    repos: Path, env: dict[str, str], hub: HubServer
) -> None:
    """No --base, a local adapter whose config names a repository only the (local) hub has: resolved from it
    header-only, as `--base hf:ID` would be, and the report says which base and what fetching it cost."""
    adapter = str(repos / "alice" / "a-clean")
    _, online = check_json(env, adapter)
    got = online["adapters"][0]
    assert got["base"]["name"] == BASE_ID and got["base"]["source"] == "hub"
    fetch = got["base"]["fetch"]
    assert fetch["commit"] == hub.commit(BASE_ID) and fetch["downloaded"] == ["config.json"]
    assert fetch["bytes"] > 0 and fetch["ranges"] and all(r.startswith("model.safetensors:") for r in fetch["ranges"])
    assert not any(f["code"] in ("base-unresolved", "base-metadata-unavailable") for f in got["findings"])
    # only the base's repository was asked for, and what was counted is what the server sent of its files
    assert hub.stats.paths and all(BASE_ID in p for p in hub.stats.paths), hub.stats.paths
    assert fetch["bytes"] <= hub.stats.bytes
    # the same verdict as with the base's folder given by hand
    _, local = check_json(env, adapter, "--base", str(repos / "tiny" / "qwen2-base"))
    want = local["adapters"][0]
    assert (got["load_outcome"], got["keys"]) == (want["load_outcome"], want["keys"]) == ("loads", got["keys"])
    # a second run finds the base in the cache: nothing is asked of the hub
    hub.reset_stats()
    _, again = check_json(env, adapter)
    assert hub.stats.requests == 0 and again["adapters"][0]["base"]["fetch"]["bytes"] == 0
    assert again["adapters"][0]["load_outcome"] == "loads"


def test_a_base_named_only_by_the_model_card_is_fetched_from_the_hub(
    repos: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """A config without base_model_name_or_path, a model card whose front matter names the base: resolved
    from the hub the same way."""
    folder = tmp_path / "card-only"
    shutil.copytree(repos / "alice" / "a-clean", folder)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = None
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    assert f"base_model: {BASE_ID}" in (folder / "README.md").read_text()
    _, data = check_json(env, str(folder))
    got = data["adapters"][0]
    assert got["base"]["name"] == BASE_ID and got["base"]["fetch"]["bytes"] > 0 and got["load_outcome"] == "loads"
    (folder / "README.md").write_text("# no front matter\n")
    _, data = check_json(env, str(folder))
    message = next(f["message"] for f in data["adapters"][0]["findings"] if f["code"] == "base-unresolved")
    assert "names no base_model_name_or_path" in message


def test_a_config_named_base_offline_is_a_finding_never_silent(
    repos: Path, env: dict[str, str], hub: HubServer
) -> None:
    proc = run({**env, "HF_HUB_OFFLINE": "1"}, "check", str(repos / "alice" / "a-clean"), "--format", "json")
    assert proc.returncode == 0, proc.stderr  # an unresolved base is not a failure by itself (docs/contract.md)
    got = json.loads(proc.stdout)["adapters"][0]
    assert got["base"] is None and got["load_outcome"] == "unknown"
    message = next(f["message"] for f in got["findings"] if f["code"] == "base-unresolved")
    assert BASE_ID in message and "HF_HUB_OFFLINE" in message and "nothing was assumed" in message
    assert hub.stats.requests == 0


def test_a_config_named_base_the_hub_refuses_is_a_finding(repos: Path, env: dict[str, str], hub: HubServer) -> None:
    hub.faults.append(Fault(BASE_ID, status=401))
    _, data = check_json(env, str(repos / "alice" / "a-clean"))
    got = data["adapters"][0]
    assert got["base"] is None and got["load_outcome"] == "unknown"
    message = next(f["message"] for f in got["findings"] if f["code"] == "base-unresolved")
    assert BASE_ID in message and "HTTP 401" in message


@pytest.mark.parametrize("offline", [False, True], ids=["hub-404", "offline"])
def test_a_catalog_guess_is_used_only_when_the_hub_cannot_answer_and_said(
    tmp_path: Path, env: dict[str, str], hub: HubServer, offline: bool
) -> None:
    """A config naming a fine-tune the catalog only knows by family and size: the hub is asked first; when
    it cannot answer, the catalog's guess is used and a finding says that this was assumed."""
    entry = lookup_catalog(CATALOG_BASE)
    assert entry is not None
    named = "carol/Qwen2.5-0.5B-Instruct-abliterated"  # not on the local hub: 404
    adapter = write_synthetic_adapter(
        tmp_path / "guess", catalog_architecture(entry), lora_config_dict(named, 2, 4, ["v_proj"])
    )
    e = {**env, "HF_HUB_OFFLINE": "1"} if offline else env
    _, data = check_json(e, str(adapter))
    got = data["adapters"][0]
    finding = next(f for f in got["findings"] if f["code"] == "base-metadata-unavailable")
    assert finding["severity"] == "medium" and named in finding["message"]
    assert (
        f"assumed the built-in catalog's shapes for {CATALOG_BASE} (a guess by family and size)" in finding["message"]
    )
    assert ("HF_HUB_OFFLINE" if offline else "not found") in finding["message"]
    assert got["base"]["guessed_from"] == named  # a guess stays marked as one: never a definite answer on it
    assert any(p.startswith(f"GET /api/models/{named}") for p in hub.stats.paths) != offline


def test_an_exact_catalog_name_asks_nothing_of_the_hub(repos: Path, env: dict[str, str], hub: HubServer) -> None:
    _, data = check_json(env, str(repos / "bob" / "qwen-small"))
    assert data["adapters"][0]["base"]["name"] == CATALOG_BASE and "fetch" not in data["adapters"][0]["base"]
    assert hub.stats.requests == 0


@pytest.mark.parametrize(
    ("base", "offline", "words"),
    [
        ("nobody/unknown-7b", False, "not found on the hub"),
        ("nobody/unknown-7b", True, "HF_HUB_OFFLINE"),
        ("qwen-typo", False, "neither a local model folder"),
    ],
)
def test_a_typed_base_that_names_nothing_is_one_line_exit_2(
    repos: Path, env: dict[str, str], base: str, offline: bool, words: str
) -> None:
    """`--base NAME` that is no folder, no hf: id, no catalog name, and that the hub cannot give: the user's
    base would not be used, so the run stops (exit 2, SPEC: bad arguments), for check and compare."""
    e = {**env, "HF_HUB_OFFLINE": "1"} if offline else env
    adapter = str(repos / "alice" / "a-clean")
    for command in ("check", "compare"):
        proc = run(e, command, adapter, *([adapter] if command == "compare" else []), "--base", base)
        assert proc.returncode == 2 and proc.stdout == "", (command, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and f"--base {base}" in lines[0] and words in lines[0], lines
        assert "Traceback" not in proc.stderr


def test_a_typed_hf_base_the_hub_lacks_stays_a_finding(repos: Path, env: dict[str, str]) -> None:
    """`--base hf:ID` says where to look: what the hub answered is a finding on each adapter (SPEC, issue 13)."""
    _, data = check_json(env, str(repos / "alice" / "a-clean"), "--base", "hf:nobody/unknown-7b")
    message = next(f["message"] for f in data["adapters"][0]["findings"] if f["code"] == "base-unresolved")
    assert "hf:nobody/unknown-7b" in message and "not found" in message
