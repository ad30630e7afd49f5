"""Regular expressions from adapter configs, matched with a bound that actually stops.

PEFT matches target_modules / exclude_modules (as strings), rank_pattern and alpha_pattern keys,
modules_to_save and layers_pattern with Python's `re` against every module name of the base. A pattern
that backtracks catastrophically hangs PEFT; it must not hang loravet. In the main thread the match runs
with Python's `re` itself (the answer is PEFT's) under a timer: `re` checks for signals while it
backtracks, so the timer stops it, and a pattern that does not finish on one module name in
PER_MATCH_S seconds is reported as catastrophic (PEFT would hang on the same name). Where no timer can be
armed (another thread), the linear-time RE2 engine (google-re2) answers for the patterns it supports.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

from loravet.adapter.limits import deadline
from loravet.findings import Finding, Severity, make_finding

__all__ = ["PATTERN_TOTAL_S", "PER_MATCH_S", "CatastrophicPattern", "pattern_match"]

PER_MATCH_S = 1.0
"""One module name: modern CPUs match a sane pattern against a module name in microseconds."""
PATTERN_TOTAL_S = 10.0
"""All module names, all adapters of a run, for one pattern."""

_spent: dict[str, float] = {}
_hung: dict[str, tuple[str, str]] = {}


class _Timeout(BaseException):
    pass


class CatastrophicPattern(Exception):
    """A config regex that does not finish in the time bound (`decided`), or that cannot be bounded here."""

    def __init__(self, field: str, pattern: str, module: str, why: str, decided: bool = True) -> None:
        self.field, self.pattern, self.module, self.decided = field, pattern, module, decided
        shown = pattern if len(pattern) <= 80 else pattern[:77] + "..."
        if decided:
            self.reason = (
                f"the {field} pattern {shown!r} {why} with Python's re, the engine PEFT uses: "
                "PEFT would hang loading this adapter"
            )
        else:
            self.reason = f"the {field} pattern {shown!r} cannot be evaluated within a time bound here ({why})"
        super().__init__(self.reason)

    def finding(self) -> Finding:
        return make_finding(
            "regex-catastrophic" if self.decided else "regex-unchecked",
            self.reason,
            severity=None if self.decided else Severity.HIGH,
            field=self.field,
            pattern=self.pattern[:500],
            module=self.module[:200],
        )


@functools.lru_cache(maxsize=4096)
def _compile(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


@functools.lru_cache(maxsize=4096)
def _compile_re2(regex: str) -> Any:
    try:
        import re2  # google-re2: linear time in the text, no backtracking
    except ImportError:
        return None
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(regex, options)
    except re2.error:
        return None


def pattern_match(regex: str, text: str, *, field: str, source: str | None = None, full: bool = False) -> Any:
    """`re.match(regex, text)` (or fullmatch) as PEFT evaluates it, bounded in time.

    `source` is the pattern as written in the config (for the finding); `regex` may wrap it as PEFT does.
    Raises re.error for an invalid pattern (as PEFT's `re` would) and CatastrophicPattern when the bound is hit.
    """
    shown = source if source is not None else regex
    if regex in _hung:
        module, why = _hung[regex]
        raise CatastrophicPattern(field, shown, module, why)
    compiled = _compile(regex)
    spent = _spent.get(regex, 0.0)
    budget = min(PER_MATCH_S, PATTERN_TOTAL_S - spent)
    start = time.monotonic()
    try:
        if budget <= 0:
            raise _Timeout
        with deadline(budget, _Timeout) as bounded:
            if bounded:
                return compiled.fullmatch(text) if full else compiled.match(text)
        linear = _compile_re2(regex)
        if linear is None:
            raise CatastrophicPattern(
                field,
                shown,
                text,
                "RE2 does not support it and no timer can be armed outside the main thread",
                decided=False,
            )
        return linear.fullmatch(text) if full else linear.match(text)
    except _Timeout:
        if budget >= PER_MATCH_S:
            why = f"does not finish matching the module name {text[:120]!r} within {PER_MATCH_S:g} s"
        else:
            why = f"takes more than {PATTERN_TOTAL_S:g} s in total on this base's module names"
        _hung[regex] = (text, why)
        raise CatastrophicPattern(field, shown, text, why) from None
    finally:
        _spent[regex] = spent + time.monotonic() - start
