"""Regenerate docs/: the finding catalog, and screenshots of the seed scenario's HTML report and terminal
table and of the demo's report (needs ../shared/data/acrc and chromium). `--findings-only`: the catalog alone."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import screenshot  # noqa: E402

import loravet  # noqa: E402
from loravet.demo.run import run_demo  # noqa: E402
from loravet.demo.scenario import build_seed_scenario  # noqa: E402
from loravet.findings import catalog_markdown  # noqa: E402
from loravet.reports.render import render  # noqa: E402


def terminal_svg(report: loravet.Report, path: Path, width: int = 150) -> Path:
    from rich.console import Console

    from loravet.reports.compare_table import render_comparison_table

    console = Console(record=True, width=width, force_terminal=True, color_system="truecolor", file=io.StringIO())
    render_comparison_table(report, console)
    path.write_text(console.export_svg(title="loravet compare"))
    return path


def main() -> None:
    docs = ROOT / "docs"
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
            subprocess.run([sys.executable, "-m", "loravet.cli", "compare", *map(str, folders), "--fail-on", "never",
                            "--format", "md"], capture_output=True, text=True).stdout)
        _demo_report, summary = run_demo(t / "demo")
        screenshot(t / "demo" / "report.html", docs / "demo-report.png", 1400, 2000)
        (docs / "demo-output.txt").write_text(summary)
    print("docs regenerated")


if __name__ == "__main__":
    main()
