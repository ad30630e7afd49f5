"""Reports are safe to read: a hostile adapter's strings cannot move the cursor, erase findings, set the window
title, write the clipboard, hide links, run script or fetch anything, in any output format."""

from __future__ import annotations

import http.server
import json
import math
import os
import pty
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import loravet
from loravet.base.catalog import catalog_architecture, lookup_catalog
from loravet.reports.render import render
from loravet.reports.sanitize import csv_cell, markdown_text, terminal_text, visible
from loravet.testing.adapters import lora_config_dict, write_synthetic_adapter

BASE = "Qwen/Qwen2.5-0.5B-Instruct"
ROOT = Path(__file__).resolve().parents[1]

ERASE = "zz\x1b[8A\x1b[J"  # cursor up 8 lines, erase to the end of the screen (the example)
OSC52 = "\x1b]52;c;cm0gLXJmIH4K\x07"  # write "rm -rf ~" to the clipboard
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # a hidden hyperlink
TITLE = "\x1b]0;PWNED-TITLE\x07"  # window title
C1 = "\x9b2J\x9d0;C1-TITLE\x9c"  # 8-bit CSI erase screen, 8-bit OSC title
MARKUP = "[red]red[/red][link=https://evil.example/]x[/link]\\[bold]y"  # rich markup, with a backslash trick
HTML = ('<img src="http://127.0.0.1:1/x.png" onerror="document.title=\'PWNED\'">'
        "<script>document.title='PWNED'</script>")
MD = "![x](http://127.0.0.1:1/img.png) [link](javascript:alert(1)) <http://127.0.0.1:1/auto> www.evil.example"
HOSTILE_KEYS = [ERASE, OSC52, OSC8, TITLE, C1, MARKUP, HTML, MD]


def hostile_adapter(root: Path, port: int = 1) -> Path:
    """Critical findings (lora_alpha Infinity, a target PEFT would hang on) and every attack in names and values."""
    entry = lookup_catalog(BASE)
    assert entry is not None
    name = "evil" + TITLE.replace("\x07", "") + "[red]" + "x"
    folder = write_synthetic_adapter(root / name, catalog_architecture(entry), lora_config_dict(BASE, 4, 8, ["q_proj"]))
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["lora_alpha"] = math.inf
    for key in HOSTILE_KEYS:
        cfg[key.replace("127.0.0.1:1", f"127.0.0.1:{port}")] = key.replace("127.0.0.1:1", f"127.0.0.1:{port}")
    cfg["base_model_name_or_path"] = BASE
    cfg["peft_version"] = ERASE + HTML
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    (folder / "README.md").write_text(f"---\nbase_model: {BASE}\n---\n# {ERASE}{OSC52}{HTML}\n")
    return folder


def test_sanitizers() -> None:
    assert visible("a\x1b[2Jb\x9bc\u202ed\n") == "a\\x1b[2Jb\\x9bc\\u202ed\\x0a"
    assert terminal_text("\\[red]") == "\\x5c[red]"
    md = markdown_text(HTML + MD + "|a|")
    assert "<" not in md.replace("\\<", "") and "](" not in md and "|" not in md.replace("\\|", "")
    assert "https[:]//" in markdown_text("https://x").replace("\\", "")
    assert [csv_cell(v) for v in ("=1+1", "+1+cmd|' /C calc'!A0", "-1", "@SUM(A1)", "\tx", "\rx", "ok", 3)] == \
        ["'=1+1", "'+1+cmd|' /C calc'!A0", "-1", "'@SUM(A1)", "'\tx", "'\rx", "ok", 3]  # a plain number stays one


def _pty_run(args: list[str], cols: int = 160, rows: int = 50) -> bytes:
    """Run the CLI on a real pseudo-terminal (it sees a tty: colours, table) and return every byte it wrote."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TERM": "xterm-256color", "COLUMNS": str(cols),
           "LINES": str(rows)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "loravet.cli", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    return out


def test_hostile_adapter_on_a_real_terminal_shows_every_critical_finding(tmp_path: Path) -> None:
    pyte = pytest.importorskip("pyte")
    folder = hostile_adapter(tmp_path)
    report = loravet.check([str(folder)])
    critical = {f.code for f in report.adapters[0].findings if f.severity.label == "critical"}
    assert "config-nonfinite" in critical
    raw = _pty_run(["check", str(folder)])
    text = raw.decode("utf-8")
    # the only escape sequences on the wire are rich's own colours (SGR); no C1 control at all
    assert [m for m in re.findall(r"\x1b(?:\[[0-9;]*[A-Za-z]|.)", text) if not re.fullmatch(r"\x1b\[[0-9;]*m", m)] \
        == []
    assert not re.search("[\x80-\x9f]", text)
    assert "\x07" not in text
    screen = pyte.Screen(160, 400)
    pyte.Stream(screen).feed(text.replace("\n", "\r\n") if "\r\n" not in text else text)
    shown = "\n".join(line.rstrip() for line in screen.display)
    for code in critical:  # each critical row is on the screen, with its severity
        assert re.search(rf"critical\s*│\s*{re.escape(code)}", shown), code
    assert screen.title == ""  # pyte records OSC 0/2 window titles
    assert "\\x1b[8A\\x1b[J" in shown  # the attack is shown, visibly escaped
    assert "\\x5c[bold]" in shown or "\\x5c" in shown.replace("\n", "")


@pytest.fixture()
def recorder() -> tuple[int, list[str], Path]:
    """A 127.0.0.1 HTTP server serving one folder and recording every request path."""
    seen: list[str] = []
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"loravet-md-{os.getpid()}-{time.monotonic_ns()}"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=str(root), **k)  # type: ignore[arg-type]

        def do_GET(self) -> None:
            seen.append(self.path)
            super().do_GET()

        def log_message(self, *a: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], seen, root
    server.shutdown()
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def _md_to_html(md: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("gfm-like" if _has_linkify() else "commonmark", {"html": True}).render(md)
    return f"<!doctype html><html><head><title>report</title></head><body>{body}</body></html>"


def _has_linkify() -> bool:
    try:
        import linkify_it  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_markdown_report_with_raw_html_on_runs_no_script_and_fetches_nothing(
        tmp_path: Path, recorder: tuple[int, list[str], Path]) -> None:
    from loravet.testing.browser import chromium, run_chromium

    if chromium() is None:
        pytest.skip("chromium is not installed")
    port, seen, served = recorder
    folder = hostile_adapter(tmp_path, port)
    md = render(loravet.check([str(folder)]), "md")
    (served / "report.html").write_text(_md_to_html(md))
    # the control: the same attack, unescaped, does run and fetch in this very harness
    (served / "control.html").write_text(_md_to_html(f"# control\n\n{HTML.replace('127.0.0.1:1', f'127.0.0.1:{port}')}"
                                                     f"\n\n![x](http://127.0.0.1:{port}/control.png)\n"))
    control = run_chromium(["--virtual-time-budget=3000", "--dump-dom", f"http://127.0.0.1:{port}/control.html"]).stdout
    assert "<title>PWNED</title>" in control and "/control.png" in seen
    seen.clear()
    dom = run_chromium(["--virtual-time-budget=3000", "--dump-dom", f"http://127.0.0.1:{port}/report.html"]).stdout
    assert "config-nonfinite" in dom
    assert "<title>report</title>" in dom  # no script ran
    assert [p for p in seen if p != "/favicon.ico"] == ["/report.html"], seen  # no image, no autolink fetched
    assert "<script" not in dom.split("</head>", 1)[1] and "onerror" not in re.sub(r"&lt;.*?&gt;", "", dom)
    assert not re.search(r"<a\s", dom)  # no link from adapter content


def test_html_report_is_inert_for_the_same_adapter(tmp_path: Path) -> None:
    html = render(loravet.check([str(hostile_adapter(tmp_path))]), "html")
    assert "<script>document.title" not in html and "<img src=\"http://127.0.0.1" not in html
    assert "config-nonfinite" in html


def test_sarif_report_is_inert_for_the_same_adapter(tmp_path: Path) -> None:
    text = render(loravet.check([str(hostile_adapter(tmp_path))]), "sarif")
    doc = json.loads(text)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", text)  # JSON escapes every C0 control
    results = doc["runs"][0]["results"]
    assert any(r["ruleId"] == "config-nonfinite" for r in results)


def test_json_and_markdown_printed_on_a_terminal_carry_no_control(tmp_path: Path) -> None:
    report = loravet.check([str(hostile_adapter(tmp_path))])
    text = render(report, "json")
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text)
    keys = json.loads(text)["adapters"][0]["findings"]
    assert any(C1 in k for f in keys if f["code"] == "unknown-config-keys" for k in f["evidence"]["keys"])  # intact
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", render(report, "md"))
