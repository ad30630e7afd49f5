"""An executed notebook calling loravet.evaluate and loravet.compare on tiny real models (built here, no
download), exported to HTML and screenshotted in headless Chromium.

    python scripts/notebook_example.py [--out docs] [--work /tmp/loravet-notebook]

Writes OUT/notebook-example.ipynb (executed), OUT/notebook-example.html and OUT/notebook-example.png.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_world(work: Path) -> dict[str, str]:
    """A tiny chat model, two trained-like folds, an inert adapter and 24 labelled ACRC-style rows."""
    from loravet.testing.data import generate_rows, write_csv
    from loravet.testing.models import build_tiny_lm
    from loravet.testing.peft_truth import make_adapter

    work.mkdir(parents=True, exist_ok=True)
    base = build_tiny_lm(work / "tiny-base")
    targets = ["q_proj", "v_proj", "o_proj"]
    fold0 = make_adapter(base, work / "fold0", seed=10, target_modules=targets)
    fold1 = make_adapter(base, work / "fold1", seed=11, target_modules=targets)
    inert = make_adapter(base, work / "blank", zero_b=True)
    data = write_csv(generate_rows(24, seed=5), work / "holdout.csv")
    return {"base": str(base), "data": str(data), "fold0": str(fold0), "fold1": str(fold1), "blank": str(inert)}


def make_notebook(world: dict[str, str]) -> object:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [
        new_markdown_cell(
            "# Vetting fold adapters in a notebook\n\nThree adapters for one tiny base: two folds "
            "and a blank one. `loravet.evaluate` scores them and the bare base on 24 labelled rows; "
            "`loravet.compare` says which to depend on."
        ),
        new_code_cell(
            "import loravet\n\n"
            f"BASE = {world['base']!r}\nDATA = {world['data']!r}\n"
            f"ADAPTERS = [{world['fold0']!r}, {world['fold1']!r}, {world['blank']!r}]"
        ),
        new_code_cell("report = loravet.evaluate(ADAPTERS, base=BASE, data=DATA, batch_size=8)\nprint(report)"),
        new_markdown_cell(
            "Per-row scores, in the file's row order: the base (control), each adapter, and the two ensembles."
        ),
        new_code_cell("report.predictions.head(8).round(4)"),
        new_code_cell("choice = loravet.compare(ADAPTERS, base=BASE)\nprint(choice)"),
        new_markdown_cell(
            "The full report renders in place; its styles apply to it alone, not to the notebook's tables above."
        ),
        new_code_cell("choice"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.validate(nb)
    return nb


def run(out: Path, work: Path) -> dict[str, Path]:
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    world = build_world(work)
    nb: object = make_notebook(world)
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env_path) if p)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    out.mkdir(parents=True, exist_ok=True)
    ipynb = out / "notebook-example.ipynb"
    nbformat.write(nb, ipynb)  # type: ignore[arg-type]
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(nb)
    html = out / "notebook-example.html"
    html.write_text(body, encoding="utf-8")
    files = {"ipynb": ipynb, "html": html}
    from loravet.testing.browser import chromium, screenshot

    if chromium():
        files["png"] = screenshot(html, out / "notebook-example.png", width=1200, height=2000)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "loravet-notebook")
    args = ap.parse_args()
    for kind, path in run(args.out, args.work).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
