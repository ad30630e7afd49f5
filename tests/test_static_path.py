"""The static path imports no torch/transformers/peft and is fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter


def test_check_imports_no_torch_transformers_or_peft(tmp_path: Path) -> None:
    entry = lookup_catalog("Qwen/Qwen2.5-1.5B-Instruct")
    assert entry is not None
    adapter = write_synthetic_adapter(tmp_path / "a", catalog_architecture(entry),
                                      lora_config_dict("Qwen/Qwen2.5-1.5B-Instruct", 8, 16, ["q_proj", "v_proj"]))
    code = (
        "import sys, loravet\n"
        f"r = loravet.check([{str(adapter)!r}])\n"
        "from loravet.reports.render import render\n"
        "for f in ('table', 'json', 'md', 'html', 'sarif'): render(r, f)\n"
        "assert r.adapters[0].load_outcome == 'loads', r.adapters[0].load_outcome\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_a_check_of_safetensors_adapters_loads_only_what_it_uses(tmp_path: Path) -> None:
    """Cold start (#12): the replay, the symbolic pickle reader, the torch-file reader, the hub client side and
    the comparison are loaded when an input needs them, never for `loravet check` of plain local adapters; a
    folder with a pickle in it does load the pickle reader (the lazy import is really reached)."""
    entry = lookup_catalog("Qwen/Qwen2.5-0.5B-Instruct")
    assert entry is not None
    arch = catalog_architecture(entry)
    plain = write_synthetic_adapter(tmp_path / "plain", arch,
                                    lora_config_dict("Qwen/Qwen2.5-0.5B-Instruct", 4, 8, ["q_proj"]))
    pickled = write_synthetic_adapter(tmp_path / "pickled", arch,
                                      lora_config_dict("Qwen/Qwen2.5-0.5B-Instruct", 4, 8, ["q_proj"]))
    (pickled / "optimizer.pt").write_bytes(b"\x80\x04K\x01.")  # a pickle of the int 1
    lazy = ("loravet.checks.replay", "loravet.adapter.pickle_vm", "loravet.adapter.torch_file",
            "loravet.sources.remote", "loravet.sources.hub_fetch", "loravet.comparison")
    code = (
        "import sys\n"
        "from loravet.cli import main\n"
        "try:\n"
        f"    main(['check', sys.argv[1], '--format', 'json', '-o', sys.argv[2]])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {lazy!r} if m in sys.modules))\n"
    )

    def loaded(folder: Path) -> str:
        proc = subprocess.run([sys.executable, "-c", code, str(folder), str(tmp_path / "out.json")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert loaded(plain) == "[]"
    assert loaded(pickled) == "['loravet.adapter.pickle_vm']"
