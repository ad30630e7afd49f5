"""Scoring progress where the user is: a rich bar on a terminal, a live HTML bar in a notebook (IPython's
display updates: no ipywidgets needed), a few plain lines on stderr in logs and pipes, or nothing."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from html import escape
from typing import Any

__all__ = ["Progress", "progress_mode"]


def _notebook_shell() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_mode(enabled: bool) -> str:
    """"off", "notebook", "terminal" or "lines"."""
    if not enabled:
        return "off"
    if _notebook_shell():
        return "notebook"
    return "terminal" if sys.stderr.isatty() else "lines"


class Progress:
    """One bar per scored model; `task(name, rows)` returns the callback the backend calls per batch."""

    LINE_EVERY_S = 30.0

    def __init__(self, enabled: bool, mode: str | None = None) -> None:
        self.mode = mode or progress_mode(enabled)
        self._rich: Any = None
        self._handle: Any = None
        self._done: dict[str, tuple[int, int, float]] = {}

    def __enter__(self) -> Progress:
        if self.mode == "terminal":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[rate]} rows/s"), TimeRemainingColumn(),
                                      console=Console(file=sys.stderr), transient=True)
            self._rich.__enter__()
        return self

    def task(self, name: str, rows: int) -> Callable[[int], None]:
        start = time.perf_counter()
        state = {"done": 0, "shown": start}
        if self.mode == "off":
            return lambda n: None
        if self.mode == "terminal":
            tid = self._rich.add_task(f"scoring {name}", total=rows, rate="-")

            def advance_rich(n: int) -> None:
                state["done"] += n
                rate = state["done"] / max(time.perf_counter() - start, 1e-9)
                self._rich.update(tid, advance=n, rate=f"{rate:.1f}")
            return advance_rich

        def advance(n: int) -> None:
            state["done"] += n
            now = time.perf_counter()
            done = int(state["done"])
            self._done[name] = (done, rows, now - start)
            if self.mode == "notebook":
                if done >= rows or now - state["shown"] >= 0.25:
                    state["shown"] = now
                    self._show_html()
            elif done >= rows or now - state["shown"] >= self.LINE_EVERY_S:
                state["shown"] = now
                verb = "scored" if done >= rows else "scoring"
                print(f"loravet: {verb} {name}: {done}/{rows} rows in {now - start:.1f} s "
                      f"({done / max(now - start, 1e-9):.1f} rows/s)", file=sys.stderr, flush=True)
        if self.mode == "notebook":
            self._done[name] = (0, rows, 0.0)
            self._show_html()
        return advance

    def _show_html(self) -> None:
        from IPython.display import HTML, display

        lines = []
        for name, (done, rows, secs) in self._done.items():
            rate = f"{done / secs:.1f} rows/s" if secs > 0 else ""
            lines.append(f"<div style='font-family:monospace'>scoring {escape(name)} "
                         f"<progress value='{done}' max='{rows}' style='width:14em'></progress> "
                         f"{done}/{rows} {rate}</div>")
        html = HTML("".join(lines))  # type: ignore[no-untyped-call]
        if self._handle is None:
            self._handle = display(html, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self._handle.update(html)

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.__exit__(None, None, None)
