"""The huggingface_hub seam: settings, the client, and one line for whatever it raises.

No reachability probe: whether the hub answers is learnt from the requests themselves, through
huggingface_hub's own session (HF_ENDPOINT, HF_TOKEN and proxies honoured), and a failure is one clear
line (:func:`hub_error_line`), never a silent switch to the cache.

huggingface_hub itself is imported inside the functions that need it, on purpose: a static check of a
local adapter against a local or catalog base never touches the hub, and the client costs about 0.25 s
of imports on a cold start.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from loravet.errors import SourceError

__all__ = [
    "cache_dir",
    "endpoint",
    "hub_api",
    "hub_error_line",
    "may_be_cached",
    "offline",
    "parse_hub_spec",
    "quiet_client",
    "repo_folder",
    "side_dir",
    "timeout",
]


def offline() -> bool:
    """HF_HUB_OFFLINE, read now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    from huggingface_hub import constants  # lazy: see the module's docstring

    return bool(constants.HF_HUB_OFFLINE)


def timeout() -> float:
    """Seconds a hub request may take (LORAVET_HUB_TIMEOUT, default 20)."""
    try:
        return float(os.environ.get("LORAVET_HUB_TIMEOUT", "20"))
    except ValueError:
        return 20.0


def endpoint() -> str:
    from huggingface_hub import constants  # lazy: see the module's docstring

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    """The huggingface_hub cache (HF_HUB_CACHE, else HF_HOME/hub, else the client's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants  # lazy: see the module's docstring

    return Path(constants.HF_HUB_CACHE)


def side_dir() -> Path:
    """Where loravet keeps what it read by range (headers, file lists, scans), beside the hub cache."""
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home) / "loravet" / "remote"
    return cache_dir().parent / "loravet" / "remote"


def repo_folder(repo: str) -> Path:
    """The cache folder of a model repository (huggingface_hub's layout: models--OWNER--NAME)."""
    return cache_dir() / ("models--" + repo.replace("/", "--"))


def may_be_cached(repo: str) -> bool:
    """False when no huggingface_hub cache folder can hold `repo`: then the hub client is not needed to
    know that nothing is cached. Any doubt answers True."""
    env = os.environ
    candidates = [
        env.get("HF_HUB_CACHE"),
        env.get("HUGGINGFACE_HUB_CACHE"),
        os.path.join(env["HF_HOME"], "hub") if env.get("HF_HOME") else None,
        os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface", "hub"),
    ]
    folder = "models--" + repo.replace("/", "--")
    return any(c and os.path.isdir(os.path.join(os.path.expanduser(c), folder)) for c in candidates)


def parse_hub_spec(spec: str) -> tuple[str, str | None]:
    """hf:OWNER/NAME[@REVISION] (or OWNER/NAME) -> (repo, revision); SourceError when malformed."""
    text = spec[3:] if spec.startswith("hf:") else spec
    revision = None
    if "@" in text:
        text, revision = text.split("@", 1)
    parts = text.split("/")
    if len(parts) != 2 or not all(parts) or any(p in (".", "..") for p in parts) or revision == "":
        raise SourceError(f"{spec}: a hub id is written hf:OWNER/NAME[@REVISION]")
    return text, revision


_LOCAL = threading.local()
_QUIETED = False


def quiet_client() -> None:
    """huggingface_hub's retry warnings and progress bars would break loravet's one-line errors (once per
    process: a scan asks for the client once per adapter)."""
    global _QUIETED
    if _QUIETED:
        return
    import logging  # stdlib, but only needed once the hub client is

    from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]  # lazy: see above

    logging.getLogger("huggingface_hub").setLevel(logging.CRITICAL)
    disable_progress_bars()
    _QUIETED = True


def hub_api() -> Any:
    """This thread's HfApi for the current endpoint (huggingface_hub's session: token, proxies honoured)."""
    from huggingface_hub import HfApi  # lazy: see the module's docstring

    quiet_client()
    url = endpoint()
    api = getattr(_LOCAL, "api", None)
    if api is None or api.endpoint != url:
        api = HfApi(endpoint=url)
        _LOCAL.api = api
    return api


def hub_error_line(spec: str, exc: BaseException, revision: str | None = None) -> str:
    """One line for whatever huggingface_hub or the network raised."""
    from huggingface_hub import errors as hf_errors  # lazy: see the module's docstring

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, hf_errors.GatedRepoError):
        return f"{spec}: gated repository: accept its conditions on the hub and set HF_TOKEN (HTTP {status})"
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return f"{spec}: revision {revision or 'main'!r} does not exist on the hub"
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        return f"{spec}: not found on the hub, or private/gated and HF_TOKEN is missing or lacks access (HTTP {status})"
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return f"{spec}: not in the local huggingface_hub cache and HF_HUB_OFFLINE is set"
    if isinstance(exc, hf_errors.LocalEntryNotFoundError):
        return f"{spec}: not in the local huggingface_hub cache and the hub cannot be reached"
    if isinstance(exc, hf_errors.HfHubHTTPError) and status is not None:
        return _http_status_line(spec, status)
    return _network_error_line(spec, exc)


def _http_status_line(spec: str, status: int) -> str:
    if status == 403:
        return f"{spec}: access denied by the hub (HTTP 403): check HF_TOKEN's permissions"
    if status == 404:
        return f"{spec}: a file the check needs is missing on the hub (HTTP 404)"
    return f"{spec}: the hub answered HTTP {status}"


def _network_error_line(spec: str, exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else name
    if "Timeout" in name or "timed out" in text.lower():
        return f"{spec}: the hub did not answer within {timeout():g} s ({name}; LORAVET_HUB_TIMEOUT sets the limit)"
    if (
        name in ("RemoteProtocolError", "ReadError", "IncompleteRead")
        or "consistency check" in text.lower()
        or "incomplete" in text.lower()
        or "truncated" in text.lower()
    ):
        return f"{spec}: the hub's response was cut short ({name}): nothing partial is used"
    if name in ("ConnectError", "ConnectionError", "ProxyError", "NetworkError") or isinstance(exc, OSError):
        return f"{spec}: cannot reach {endpoint()} ({name}: {text})"
    return f"{spec}: cannot be fetched ({name}: {text})"
