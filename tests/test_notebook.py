"""A real notebook, executed in a real kernel: loravet.evaluate shows progress and a short repr, its per-row
DataFrame renders as the notebook's own table, compare prints its choice, and the exported HTML keeps the
notebook's styling (the report's CSS is scoped to its own div)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("nbclient")
pytest.importorskip("nbconvert")
pytest.importorskip("ipykernel")

from loravet.testing.browser import chromium, dump_dom, png_distinct_bytes

pytestmark = [pytest.mark.peft, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("notebook_example", ROOT / "scripts" / "notebook_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outputs(cell: dict[str, Any]) -> tuple[str, str]:
    text, html = "", ""
    for out in cell.get("outputs", []):
        assert out["output_type"] != "error", out
        if out["output_type"] == "stream":
            stream = "".join(out["text"])
            assert out["name"] == "stdout" or "Warning" not in stream, stream
            text += stream
        data = out.get("data", {})
        text += "".join(data.get("text/plain", ""))
        html += "".join(data.get("text/html", ""))
    return text, html


def test_executed_notebook(tmp_path: Path) -> None:
    files = _script().run(tmp_path / "out", tmp_path / "work")
    nb = json.loads(files["ipynb"].read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    text, html = _outputs(code[1])
    assert "scoring base" in html and "24/24" in html  # the live progress, in its final state
    assert "<loravet Report: eval, 3 adapter(s)>" in text and len(text) < 2000  # not a dataclass dump
    assert "report.predictions" in text
    _, frame = _outputs(code[2])
    assert 'class="dataframe' in frame and "ensemble_rank" in frame and "fold0" in frame
    text, _ = _outputs(code[3])
    assert "preferred: fold" in text
    _, report_html = _outputs(code[4])
    assert "<div class='loravet'>" in report_html and "Depend on" in report_html
    page = files["html"].read_text()
    assert "ensemble_rank" in page
    if chromium() is None:
        pytest.skip("no chromium: the executed notebook is checked, not its rendering")
    dom = dump_dom(files["html"])
    assert "ensemble_rank" in dom and "scoring fold1" in dom
    assert png_distinct_bytes(files["png"]) > 20


def test_report_html_in_a_notebook_styles_only_itself() -> None:
    from loravet.reports.html import render_html
    from loravet.results import Report

    fragment = render_html(Report("check", []), fragment=True)
    style = fragment.split("<style>", 1)[1].split("</style>", 1)[0]
    rules = [r.split("{", 1)[0] for r in style.replace("}", "}\n").splitlines() if "{" in r]
    assert rules and all(r.strip().startswith(("div.loravet", "@")) for r in rules), rules
    assert Report("check", []).__repr__().startswith("<loravet Report")
