"""loravet's exceptions.

    LoravetError                 anything loravet reports as "could not run" (exit code 2)
    ├── SourceError              an ADAPTER argument that is not a folder, zip or hub id loravet can open
    │   └── UnsafeArchiveError   a zip that breaks the extraction rules (.., absolute paths, links, bombs)
    ├── BaseResolutionError      an explicit --base that resolves to nothing
    └── EvaluationError          the evaluation path cannot run (no weights, no data, missing extra)

Corrupt or hostile *content* of an adapter is never an exception: it is a finding.
"""

from __future__ import annotations

__all__ = ["BaseResolutionError", "EvaluationError", "LoravetError", "SourceError", "UnsafeArchiveError"]


class LoravetError(Exception):
    """A one-line, actionable reason why loravet could not run."""


class SourceError(LoravetError):
    pass


class UnsafeArchiveError(SourceError):
    pass


class BaseResolutionError(LoravetError):
    pass


class EvaluationError(LoravetError):
    pass
