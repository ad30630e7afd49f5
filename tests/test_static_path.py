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
