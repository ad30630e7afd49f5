"""Regenerate docs/: the finding catalog, and screenshots of the seed scenario's HTML report and terminal
table and of the demo's report (needs ../shared/data/acrc and chromium), and of the report inside an executed
Jupyter notebook (needs nbconvert, nbclient, ipykernel).
`--findings-only`: the catalog alone; `--notebook-only`: the notebook screenshot alone; `--skip-demo`: all but
the full demo's output and screenshot."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import loravet
from loravet.demo.run import run_demo
from loravet.findings import catalog_markdown
from loravet.reports.render import render
from loravet.testing.browser import screenshot
from loravet.testing.scenarios import build_seed_scenario

ROOT = Path(__file__).resolve().parents[1]


def terminal_svg(report: loravet.Report, path: Path, width: int = 150) -> Path:
    from rich.console import Console

    from loravet.reports.compare_table import render_comparison_table

    console = Console(record=True, width=width, force_terminal=True, color_system="truecolor", file=io.StringIO())
    render_comparison_table(report, console)
    path.write_text(console.export_svg(title="loravet compare"))
    return path


def notebook_screenshot(png: Path) -> Path:
    """The HTML report inside a real Jupyter notebook page: a notebook that calls loravet.compare on the
    folders of `loravet demo --static`, executed by nbclient, exported by nbconvert (JupyterLab template, with
    its own CSS), opened in headless chromium."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "loravet.cli", "demo", "--static", "loravet-demo"],
            cwd=t,
            check=True,
            capture_output=True,
        )
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_markdown_cell(
                "# Which adapter should I use?\n\nThe notebook's own styling stays as it "
                "is: loravet's CSS applies only inside its report."
            ),
            nbformat.v4.new_code_cell(
                "import loravet\n"
                "report = loravet.compare(sorted(str(p) for p in "
                "__import__('pathlib').Path('loravet-demo/adapters').iterdir()))\n"
                "report"
            ),
            nbformat.v4.new_code_cell("print(report.comparison['preferred'])"),
        ]
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(t)}}).execute()
        html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
        page = t / "notebook.html"
        page.write_text(html, encoding="utf-8")
        screenshot(page, png, 1400, 1500)
    return png


def main() -> None:
    docs = ROOT / "docs"
    if "--notebook-only" in sys.argv[1:]:
        print(notebook_screenshot(docs / "notebook-report.png"))
        return
    (docs / "findings.md").write_text(catalog_markdown())
    if "--findings-only" in sys.argv[1:]:
        print("docs/findings.md regenerated")
        return
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        with (ROOT.parent / "shared" / "data" / "acrc" / "train.csv").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        folders = build_seed_scenario(t / "seed", rows)
        report = loravet.compare([str(p) for p in folders])
        (t / "seed.html").write_text(render(report, "html"))
        screenshot(t / "seed.html", docs / "seed-report.png", 1400, 2200)
        svg = terminal_svg(report, t / "seed-terminal.svg")
        screenshot(svg, docs / "seed-terminal.png", 1500, 1700)
        (docs / "seed-compare.txt").write_text(
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "loravet.cli",
                    "compare",
                    *map(str, folders),
                    "--fail-on",
                    "never",
                    "--format",
                    "md",
                ],
                capture_output=True,
                text=True,
            ).stdout
        )
        if "--skip-demo" not in sys.argv[1:]:  # the full demo trains and evaluates: minutes
            _demo_report, summary = run_demo(t / "demo")
            screenshot(t / "demo" / "report.html", docs / "demo-report.png", 1400, 2000)
            (docs / "demo-output.txt").write_text(summary)
    notebook_screenshot(docs / "notebook-report.png")
    print("docs regenerated")


if __name__ == "__main__":
    main()
