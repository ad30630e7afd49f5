"""The `loravet` command: a thin layer over loravet.api.

Exit codes: 0 ran and nothing at or above --fail-on; 1 ran and something is; 2 could not run (one
line on stderr, nothing on stdout).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from loravet import api
from loravet.base.catalog import CATALOG
from loravet.errors import LoravetError, SourceError
from loravet.evaluation.outputs import check_writable
from loravet.findings import FINDING_RULES, Severity, catalog_markdown
from loravet.reports.render import render
from loravet.reports.sanitize import visible
from loravet.reports.text import render_summary_table

__all__ = ["main"]

FORMATS = ["table", "json", "md", "html", "sarif"]
SEVERITIES = ["critical", "high", "medium", "low", "never"]


class _Group(click.Group):
    def main(self, *args: Any, **kwargs: Any) -> Any:  # one line, exit 2, never a traceback
        kwargs.setdefault("standalone_mode", False)
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except click.UsageError as exc:
            click.echo(f"loravet: {visible(exc.format_message())}", err=True)
            sys.exit(2)
        except click.exceptions.Abort:
            click.echo("loravet: aborted", err=True)
            sys.exit(2)
        except click.ClickException as exc:  # may quote a path the user gave: controls shown, not sent
            click.echo(f"loravet: {visible(exc.format_message())}", err=True)
            sys.exit(2)
        except LoravetError as exc:  # the message may quote adapter names: controls shown, not sent
            click.echo(f"loravet: {visible(str(exc))}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("loravet: interrupted", err=True)
            sys.exit(2)
        except Exception as exc:  # a bug: still one line, no traceback
            click.echo(f"loravet: internal error: {type(exc).__name__}: {visible(str(exc)[:300])}", err=True)
            sys.exit(2)
        sys.exit(rv if isinstance(rv, int) else 0)


def _table_width() -> int | None:
    """The width a table is laid out for: COLUMNS when set, else the terminal's, else None (120 columns).

    A fixed 120 made every line wrap on a narrower terminal (a six-adapter comparison at 100 columns).
    """
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return max(int(cols), 40)
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size().columns, 40)
    return None


def _write_output(output: str, text: str) -> None:
    """Write a report to FILE, creating its missing parent folders (as `-o reports/x.json` suggests)."""
    try:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LoravetError(f"cannot write {output}: {exc.strerror or exc}") from None


def _emit(report: Any, fmt: str | None, output: str | None) -> None:
    if fmt is None:
        fmt = (
            "table"
            if (output is None and sys.stdout.isatty())
            else ("json" if output and output.endswith(".json") else "table")
        )
        if output:
            suffix = Path(output).suffix.lower()
            fmt = {".json": "json", ".md": "md", ".html": "html", ".sarif": "sarif"}.get(suffix, fmt)
    text = render(report, fmt, color=output is None and sys.stdout.isatty(), width=None if output else _table_width())
    if output:
        _write_output(output, text)
    else:
        click.echo(text, nl=False)


def _base_path_exists(base: str | None) -> None:
    """`--base ./typo`: a path that does not exist is a bad argument (exit 2), not a base to look up. Names
    such as `Qwen/Qwen2.5-1.5B-Instruct` and `hf:` ids are resolved (catalog, cache, hub) as usual."""
    if base and base.startswith((".", "/", "~")) and not Path(base).expanduser().exists():
        raise click.UsageError(f"--base {base}: no such folder")


def _common(f: Any) -> Any:
    f = click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=None,
        help="Output format (table on a terminal by default).",
    )(f)
    f = click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write to FILE.")(f)
    f = click.option(
        "--fail-on",
        type=click.Choice(SEVERITIES),
        default="high",
        show_default=True,
        help="Exit 1 when a finding is at or above this severity.",
    )(f)
    return f


@click.group(cls=_Group, no_args_is_help=True)
@click.version_option(package_name="loravet")
def main() -> None:
    """Vet third-party LoRA adapters (Hugging Face PEFT format) before you depend on them.

    \b
    loravet inspect ./adapter                 what it is: config, exact params, sizes
    loravet check ./adapter --base Qwen/Qwen2.5-1.5B-Instruct
    loravet compare ./a ./b                   side by side, and which to depend on
    loravet explain shape-mismatch            what a finding means and how to fix it
    loravet demo --static ./loravet-demo      six example adapters to try these on (seconds)
    """


@main.command()
@click.argument("adapters", nargs=-1, required=True)
@_common
def inspect(adapters: tuple[str, ...], fmt: str | None, output: str | None, fail_on: str) -> int:
    """What each adapter is: config, exact parameter counts, sizes, weight statistics, files.

    No base is resolved: `base` is null and `load_outcome` "unknown".

    \b
    loravet inspect ./my-adapter hf:someone/their-lora --format json
    """
    report = api.inspect(list(adapters))
    _emit(report, fmt, output)
    return api.exit_code(report, fail_on)


_EVAL_DATA = click.option(
    "--eval-data",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Your evaluation CSV: flag its rows if they are in an adapter's training artifacts.",
)


@main.command()
@click.argument("adapters", nargs=-1, required=True)
@click.option("--base", default=None, help="Local model folder, hf:ID, or catalog name (default: the config's).")
@_EVAL_DATA
@click.option(
    "--replay",
    is_flag=True,
    default=None,
    help="Replay the load with the installed PEFT on a weightless (meta-device) base instead of "
    "predicting it (default: only where the prediction is unknown).",
)
@_common
def check(
    adapters: tuple[str, ...],
    base: str | None,
    eval_data: str | None,
    replay: bool | None,
    fmt: str | None,
    output: str | None,
    fail_on: str,
) -> int:
    """Everything inspect knows, plus compatibility with the base, provenance, security and artifacts.

    \b
    loravet check ./adapter --base Qwen/Qwen2.5-1.5B-Instruct --fail-on high
    loravet check ./fold0 ./fold1 ./fold2 --format sarif -o loravet.sarif
    """
    _base_path_exists(base)
    report = api.check(list(adapters), base=base, eval_data=eval_data, replay=True if replay else None)
    _emit(report, fmt, output)
    return api.exit_code(report, fail_on)


@main.command()
@click.argument("adapters", nargs=-1, required=True)
@click.option("--base", default=None, help="Local model folder, hf:ID, or catalog name (default: each config's).")
@_EVAL_DATA
@click.option(
    "--replay/--no-replay",
    default=None,
    help="Replay the loads with the installed PEFT on a weightless base (default: when torch and peft are installed).",
)
@_common
def compare(
    adapters: tuple[str, ...],
    base: str | None,
    eval_data: str | None,
    replay: bool | None,
    fmt: str | None,
    output: str | None,
    fail_on: str,
) -> int:
    """Side by side: one row per aspect, a winner per row with its reason, and the adapter to depend on.

    \b
    loravet compare ./adapter-a ./adapter-b --format html -o report.html
    loravet compare loravet-demo/adapters/* --base HuggingFaceTB/SmolLM2-135M-Instruct
    """
    if len(adapters) < 2:
        raise click.UsageError("compare needs at least two adapters")
    _base_path_exists(base)
    report = api.compare(list(adapters), base=base, eval_data=eval_data, replay=replay)
    _emit(report, fmt, output)
    return api.exit_code(report, fail_on)


@main.command(name="eval")
@click.argument("adapters", nargs=-1, required=True)
@click.option("--base", default=None, help="Local model folder, or a hub id whose weights are in the cache.")
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="CSV to score (ACRC columns).")
@click.option("--task", type=click.Choice(["acrc", "binary"]), default="acrc", show_default=True)
@click.option("--template", default=None, help="Prompt with {column} fields (replaces the default ACRC prompt).")
@click.option("--label-column", default=None, help="0/1 label column (ACRC: rule_violation).")
@click.option("--text-column", default=None, help="Comment column for leakage checks (default body).")
@click.option("--batch-size", type=click.IntRange(1, 4096), default=8, show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Score a stratified sample of N rows.")
@click.option("--max-length", type=click.IntRange(16), default=1024, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--positive-label", default=None, help="SEQ_CLS: index of the positive label (default 1).")
@click.option("--predictions", type=click.Path(dir_okay=False), default=None, help="Write per-row scores CSV.")
@click.option("--submission", type=click.Path(dir_okay=False), default=None, help="Write row_id,rule_violation.")
@_common
def eval_cmd(
    adapters: tuple[str, ...],
    base: str | None,
    data: str,
    task: str,
    template: str | None,
    label_column: str | None,
    text_column: str | None,
    batch_size: int,
    limit: int | None,
    max_length: int,
    device: str,
    positive_label: str | None,
    predictions: str | None,
    submission: str | None,
    fmt: str | None,
    output: str | None,
    fail_on: str,
) -> int:
    """Run the adapters (and the bare base as control) on data: scores, degenerate-output detection,
    rule-mean AUC, fold agreement, ensembles, predictions and submission files.

    Static `check` runs first: an adapter that fails or carries an unsafe pickle is reported, not loaded.
    The base is loaded once; every adapter is attached to that one copy.

    \b
    loravet eval ./fold0 ./fold1 ./fold2 --base ./my-base-model --data train.csv --limit 200
    loravet eval ./fold* --base Qwen/Qwen2.5-1.5B-Instruct --data test.csv --submission submission.csv
    """
    # lazy: the runner's imports (difflib, html, the metrics) serve eval alone, and every other command starts
    # without them (with scan's, ~14 ms of CPU on a cold start; torch itself comes later still, in the backend)
    from loravet.evaluation.runner import evaluate

    if not Path(data).exists():
        raise click.UsageError(f"--data {data}: no such file")
    check_writable(output, "--output")  # before any scoring, like --predictions and --submission
    report = evaluate(
        list(adapters),
        base,
        data,
        task=task,
        template=template,
        label_column=label_column,
        text_column=text_column,
        batch_size=batch_size,
        limit=limit,
        max_length=max_length,
        device=device,
        positive_label=positive_label,
        predictions=predictions,
        submission=submission,
    )
    _emit(report, fmt, output)
    return api.exit_code(report, fail_on)


@main.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="The whole catalog.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "md"]),
    default="text",
    show_default=True,
    help="Plain text, or Markdown (as in docs/findings.md).",
)
def explain(code: str | None, show_all: bool, fmt: str) -> int:
    """What a finding code detects, why it matters, how to fix it, with an example.

    \b
    loravet explain shape-mismatch
    loravet explain --all --format md > docs/findings.md
    """
    if show_all or code is None:
        if fmt == "md" or show_all:
            click.echo(catalog_markdown(), nl=False)
        else:
            for rule in FINDING_RULES.values():
                click.echo(f"{rule.code:28} {rule.severity.label:9} {rule.title}")
        return 0
    found = FINDING_RULES.get(code)
    if found is None:
        raise click.UsageError(f"unknown finding code {code!r} (see `loravet explain --all`)")
    rule = found
    click.echo(
        f"{rule.code} ({rule.severity.label}): {rule.title}\n\nWhat it detects: {rule.detects}\n\n"
        f"Why it matters: {rule.why}\n\nHow to fix: {rule.fix}\n\nExample: {rule.example}"
    )
    return 0


@main.command()
@click.argument("directory", required=False, default="loravet-demo")
@click.option(
    "--static",
    "static_only",
    is_flag=True,
    help="Static checks only: synthetic adapters, no model, no training (seconds).",
)
def demo(directory: str, static_only: bool) -> int:
    """Build a realistic scenario locally (no network) and vet it: k-fold siblings with their splits,
    an impostor (its config names one base, its tensors fit another), an inert adapter, and one carrying a
    malicious pickle. Writes DIR/report.html, report.md, report.json and prints which adapter to use.

    Exits 0 whenever it ran to the end: its broken adapters are the point.

    \b
    loravet demo ./loravet-demo
    """
    try:  # one line, not "internal error: FileExistsError", for a DIR that is a file or cannot be made
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "it exists and is not a folder" if Path(directory).exists() else (exc.strerror or str(exc))
        raise LoravetError(f"demo: cannot use {directory} as the demo folder: {reason}") from None
    # lazy: the demo's builders, its training and eval's runner (testing.*, demo.training, evaluation.runner,
    # ~30-70 ms) serve the demo alone, and a cold `loravet check` starts without them
    from loravet.demo.run import run_demo

    report, summary = run_demo(Path(directory), real=False if static_only else None)
    click.echo(render_summary_table(report, color=sys.stdout.isatty(), width=_table_width()), nl=False)
    click.echo(summary, nl=False)
    return 0


@main.command()
@click.option(
    "--base",
    "base_id",
    default=None,
    metavar="BASE_ID",
    help="Audit the adapters the hub records for this base (base_model:adapter:BASE_ID).",
)
@click.option(
    "--from",
    "from_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Audit the ids (hf:OWNER/NAME or OWNER/NAME) or local paths in FILE, one a line.",
)
@click.option(
    "--against",
    default=None,
    help="Check against this base (default: hf:BASE_ID with --base, each adapter's own with --from).",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSONL of per-adapter results, appended as they come; a rerun resumes from it.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Adapters in flight (threads), per process [default: 8 in all: 8 in one process, 4 in each of 2].",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes (the checks' CPU time spreads over cores) [default: 2 from 100 adapters to check "
    "on a machine with 2 or more CPUs, else 1].",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N adapters from the listing.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "md", "html"]),
    default=None,
    help="Summary format (table on a terminal by default).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the summary to FILE.")
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default="high",
    show_default=True,
    help="Exit 1 when any adapter has a finding at or above this severity.",
)
def scan(
    base_id: str | None,
    from_file: str | None,
    against: str | None,
    results: str | None,
    workers: int | None,
    processes: int | None,
    limit: int | None,
    quiet: bool,
    fmt: str | None,
    output: str | None,
    fail_on: str,
) -> int:
    """Audit a population of adapters header-only, in parallel, resumable, with a summary.

    \b
    loravet scan --base Qwen/Qwen2.5-1.5B-Instruct --results qwen.jsonl --format md -o qwen.md
    loravet scan --from adapters.txt --results out.jsonl
    """
    # lazy: the scan's thread pool (concurrent.futures, which imports logging) and its report (html) serve scan
    # alone, and a cold `loravet check` starts without them (with eval's runner, ~14 ms of CPU)
    from loravet.reports.scan_report import render_scan
    from loravet.scan import list_base_adapters, read_results, read_targets, run_scan, summarise

    _check_scan_source(base_id, from_file)
    if from_file is not None:
        targets = read_targets(Path(from_file))
        source = from_file
        check_base = against
    else:
        assert base_id is not None
        targets = list_base_adapters(base_id, limit)
        source = f"the hub's adapters of {base_id.removeprefix('hf:')}"
        check_base = against or f"hf:{base_id.removeprefix('hf:')}"
    if limit is not None:
        targets = targets[:limit]
    if not targets:
        raise SourceError(f"nothing to scan: {source} lists no adapters")
    results_path, tmp = _scan_results_path(results)
    try:
        run_scan(targets, check_base, results_path, workers=workers, processes=processes, quiet=quiet)
        wanted = set(targets)
        seen: set[str] = set()

        def mine() -> Any:
            for rec in read_results(results_path):
                if rec["spec"] in wanted and rec["spec"] not in seen:
                    seen.add(rec["spec"])
                    yield rec

        summary = summarise(mine(), source).to_json()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    if not summary["checked"]:  # every target was an error record: nothing recognisable was checked (exit 2)
        first = (summary["errors"]["examples"] or [{}])[0]
        raise SourceError(
            f"nothing could be checked: all {summary['adapters']} target(s) failed"
            + (f" (first: {first.get('spec')}: {first.get('error')})" if first else "")
        )
    fmt = fmt or _scan_format(output)
    text = render_scan(
        summary, fmt, color=output is None and sys.stdout.isatty(), width=None if output else _table_width()
    )
    _write_or_echo(text, output)
    return _scan_exit_code(summary["worst_severity"], fail_on)


def _check_scan_source(base_id: str | None, from_file: str | None) -> None:
    if (base_id is None) == (from_file is None):
        raise click.UsageError("give exactly one of --base BASE_ID and --from FILE")
    if from_file is not None and not Path(from_file).exists():
        raise SourceError(f"{from_file}: no such file")


def _write_or_echo(text: str, output: str | None) -> None:
    if output:
        _write_output(output, text)
    else:
        click.echo(text, nl=False)


def _scan_results_path(results: str | None) -> tuple[Path, Path | None]:
    """Where the scan's records go, and the temporary folder to remove afterwards when --results is not given."""
    if results is not None:
        return Path(results), None
    import tempfile  # only for a scan without --results

    tmp = Path(tempfile.mkdtemp(prefix="loravet-scan-"))
    return tmp / "results.jsonl", tmp


def _scan_format(output: str | None) -> str:
    """The summary's format when --format is not given: from the output file's suffix, else the table."""
    if not output:
        return "table"
    return {".json": "json", ".md": "md", ".html": "html"}.get(Path(output).suffix.lower(), "table")


def _scan_exit_code(worst: str | None, fail_on: str) -> int:
    if fail_on == "never" or worst is None:
        return 0
    return 1 if Severity.parse(worst) >= Severity.parse(fail_on) else 0


@main.command()
def bases() -> int:
    """The built-in base catalog (works offline)."""
    for e in CATALOG:
        hidden, _inter, layers, heads, kv, _head_dim, vocab, _tied = e.dims
        click.echo(
            f"{e.name:42} {e.model_type:12} layers {layers:3}  hidden {hidden:5}  heads {heads}/{kv}  vocab {vocab}"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
