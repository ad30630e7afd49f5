"""A local stand-in for the Hugging Face Hub, for tests and benchmarks (never used by loravet itself).

It speaks the subset of the hub's HTTP interface that huggingface_hub's client uses for what loravet asks:
file resolve (HEAD and GET, with Range), model info (`/api/models/{id}` and `.../revision/{rev}`, with
`blobs=true` sizes) and model listing (`/api/models?filter=...`). It serves a folder of repositories laid
out as ROOT/OWNER/NAME/<files>; each repository's commit is a digest of its file names, sizes and mtimes.
A repository's tags come from ROOT/OWNER/NAME/.hub.json ({"tags": [...], "gated": true}) or, failing that,
from its adapter_config.json (`base_model:adapter:<base_model_name_or_path>`), as the hub derives them
from the model card.

It counts requests and body bytes served, can add latency, answer 401/403/404/500 or cut a body short
for chosen repositories, require a token for private ones, and stops by itself after `lifetime` seconds
(a daemon thread).

    with HubServer(root) as hub:
        os.environ["HF_ENDPOINT"] = hub.url
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

__all__ = ["Fault", "HubServer", "client_env"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<rev>[^/]+))?/?$")


@dataclass
class Fault:
    """What to do instead of answering, for the repositories whose id matches `repo` (fnmatch-free: exact
    id, or "*" for all). `status`: answer this HTTP status (401, 403, 404, 500, ...); `truncate`: send
    only this many body bytes of file downloads while announcing the full length; `latency`: seconds to
    wait before answering; `gated`: answer 403 with the hub's GatedRepo error code; `only`: apply to
    "files", "api" or "all" requests."""

    repo: str = "*"
    status: int | None = None
    truncate: int | None = None
    latency: float = 0.0
    gated: bool = False
    missing_revision: bool = False
    only: str = "all"


@dataclass
class _Stats:
    requests: int = 0
    bytes: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)


class _KeepAliveHandler(WSGIRequestHandler):
    """The standard library's WSGI handler, HTTP/1.1 with keep-alive, as the hub answers: werkzeug's own
    development server closes the connection after every response (it cannot drain a request body), so a
    client paid a TCP connection and the server a new thread per request, which the real hub never costs.
    Every request here is bodiless (GET, HEAD); a response the app marks (a cut-short body) or one without a
    length closes its connection, so the client sees the truncation as it would on the hub."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait for a delayed ACK

    def setup(self) -> None:
        super().setup()
        server: Any = self.server
        server.track(self.connection, True)

    def finish(self) -> None:
        server: Any = self.server
        server.track(self.connection, False)
        super().finish()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def handle(self) -> None:
        self.close_connection = True
        try:
            self.handle_one_request()
            while not self.close_connection:
                self.handle_one_request()
        except (ConnectionError, TimeoutError):  # a client killed mid-request (the bench's resume test)
            self.close_connection = True

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline or len(self.raw_requestline) > 65536:
            self.close_connection = True
            return
        if not self.parse_request():  # sends its own error and sets close_connection
            return
        target = urlsplit(self.path)
        if target.scheme and target.netloc:  # absolute form, as a client sends it to a forward proxy
            self.path = target.path + (f"?{target.query}" if target.query else "")
        wfile: Any = self.wfile  # a socket writer: IO[bytes] in all but name
        handler = _ServerHandler(self.rfile, wfile, self.get_stderr(), self.get_environ(), multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())  # type: ignore[attr-defined]
        if not handler.keep_alive:
            self.close_connection = True


class _ServerHandler(ServerHandler):
    http_version = "1.1"
    keep_alive = False
    headers: Any  # wsgiref's, set by start_response (untyped in typeshed)
    request_handler: Any

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        assert self.headers is not None
        close = self.headers.get(_CLOSE) is not None
        del self.headers[_CLOSE]
        self.keep_alive = "Content-Length" in self.headers and not close
        if not self.keep_alive:
            self.headers["Connection"] = "close"


class _KeepAliveServer(ThreadingHTTPServer, WSGIServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_KeepAliveHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, conn: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            if is_open:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def close_connections(self) -> None:
        with self._open_lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._open.clear()


_CLOSE = "X-Loravet-Close"  # set by the app on a response after which the connection must close


class HubServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 (a free port) serving `root` as hub repositories (a werkzeug
    WSGI app on the standard library's keep-alive server)."""

    def __init__(self, root: Path | str, *, lifetime: float = 900.0, keep_paths: bool = True) -> None:
        self.root = Path(root)
        self.lifetime = lifetime
        self.keep_paths = keep_paths
        self.faults: list[Fault] = []
        self.tokens: dict[str, str] = {}  # private repo -> the token it needs (Authorization: Bearer ...)
        self.sizes = True  # False: model info without file sizes, as some mirrors answer
        self.stats = _Stats()
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._commits: dict[str, tuple[float, str]] = {}
        self._blob_ids: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> git blob id
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> HubServer:
        self._server = _KeepAliveServer(("127.0.0.1", 0), _KeepAliveHandler)
        self._server.set_app(self._app)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()  # kept-alive clients are cut off too: the hub is gone
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_stats(self) -> None:
        with self._lock:
            self.stats = _Stats()

    # -- repositories ----------------------------------------------------------------------------
    def repos(self) -> Iterator[str]:
        for owner in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for repo in sorted(p for p in owner.iterdir() if p.is_dir()):
                yield f"{owner.name}/{repo.name}"

    def _files(self, repo: str) -> list[Path]:
        folder = self.root / repo
        return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".hub.json")

    def commit(self, repo: str) -> str:
        folder = self.root / repo
        stamp = folder.stat().st_mtime
        hit = self._commits.get(repo)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        h = hashlib.sha1(repo.encode())
        for p in self._files(repo):
            st = p.stat()
            h.update(f"{p.relative_to(folder).as_posix()}:{st.st_size}:{st.st_mtime_ns}".encode())
        sha = h.hexdigest()
        self._commits[repo] = (stamp, sha)
        return sha

    def _meta(self, repo: str) -> dict[str, Any]:
        extra = self.root / repo / ".hub.json"
        meta: dict[str, Any] = {}
        if extra.exists():
            meta = json.loads(extra.read_text())
        if "tags" not in meta:
            tags: list[str] = []
            cfg = self.root / repo / "adapter_config.json"
            if cfg.exists():
                try:
                    base = json.loads(cfg.read_text()).get("base_model_name_or_path")
                except (ValueError, OSError):
                    base = None
                if isinstance(base, str) and base:
                    tags = ["peft", f"base_model:adapter:{base}"]
            meta["tags"] = tags
        return meta

    def _blob_id(self, path: Path) -> str:
        """The file's git blob id, a hash of its content as the hub gives it (a changed file gets a new id, so a
        client's cache never mistakes it for the old one); memoised by path, size and mtime."""
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        found = self._blob_ids.get(key)
        if found is None:
            digest = hashlib.sha1(b"blob %d\0" % st.st_size)
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            found = self._blob_ids[key] = digest.hexdigest()
        return found

    def _info(self, repo: str, blobs: bool) -> dict[str, Any]:
        folder = self.root / repo
        siblings = []
        for p in self._files(repo):
            entry: dict[str, Any] = {"rfilename": p.relative_to(folder).as_posix()}
            if blobs and self.sizes:
                entry["size"] = p.stat().st_size
                entry["blobId"] = self._blob_id(p)
            siblings.append(entry)
        meta = self._meta(repo)
        return {
            "id": repo,
            "modelId": repo,
            "sha": self.commit(repo),
            "private": False,
            "gated": bool(meta.get("gated", False)),
            "disabled": False,
            "tags": meta["tags"],
            "siblings": siblings,
            "lastModified": "2026-01-01T00:00:00.000Z",
        }

    # -- faults ----------------------------------------------------------------------------------
    def _fault(self, repo: str | None, kind: str) -> Fault | None:
        for f in self.faults:
            if (f.repo == "*" or f.repo == repo) and f.only in ("all", kind):
                return f
        return None

    # -- WSGI ------------------------------------------------------------------------------------
    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        response = self._answer(request, Response)
        body_len = (
            0 if request.method == "HEAD" else int(response.headers.get("X-Body-Length", response.content_length or 0))
        )
        response.headers.pop("X-Body-Length", None)
        with self._lock:
            self.stats.requests += 1
            self.stats.bytes += body_len
            kind = "api" if request.path.startswith("/api/") else request.method.lower()
            self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
            if self.keep_paths:
                self.stats.paths.append(f"{request.method} {request.path}")
        result: Iterable[bytes] = response(environ, start_response)
        return result

    def _error(self, response_cls: Any, status: int, code: str | None = None, message: str = "") -> Any:
        headers = {"X-Error-Code": code} if code else {}
        if message:
            headers["X-Error-Message"] = message
        body = json.dumps({"error": message or code or str(status)})
        return response_cls(body, status=status, headers=headers, content_type="application/json")

    def _answer(self, request: Any, response_cls: Any) -> Any:
        path = request.path
        info = _INFO.match(path)
        resolve = _RESOLVE.match(path)
        repo = info.group("repo") if info else resolve.group("repo") if resolve else None
        kind = "files" if resolve else "api"
        fault = self._fault(repo, kind)
        if fault is not None and fault.latency:
            time.sleep(fault.latency)
        if path.rstrip("/") == "/api/models":
            return self._listing(request, response_cls)
        if repo is None:
            return self._error(response_cls, 404, None, "no such route")
        refused = self._injected(fault, response_cls)
        if refused is None:
            refused = self._refused(request, response_cls, repo, kind)
        if refused is not None:
            return refused
        folder = self.root / repo
        rev = (info.group("rev") if info else resolve.group("rev") if resolve else None) or "main"
        sha = self.commit(repo)
        if rev not in ("main", sha):
            return self._error(response_cls, 404, "RevisionNotFound", "Invalid rev id")
        if info:
            blobs = request.args.get("blobs", "").lower() in ("1", "true")
            return response_cls(
                json.dumps(self._info(repo, blobs)), content_type="application/json", headers={"X-Repo-Commit": sha}
            )
        assert resolve is not None
        target = folder / resolve.group("file")
        if not target.is_file() or folder.resolve() not in target.resolve().parents or target.name == ".hub.json":
            return self._error(response_cls, 404, "EntryNotFound", "Entry not found")
        return self._file(request, response_cls, target, sha, fault)

    def _injected(self, fault: Fault | None, response_cls: Any) -> Any | None:
        """The error a configured fault answers with, if any."""
        if fault is None:
            return None
        if fault.gated:
            return self._error(response_cls, 403, "GatedRepo", "Access to model is restricted")
        if fault.missing_revision:
            return self._error(response_cls, 404, "RevisionNotFound", "Invalid rev id")
        if fault.status == 401:
            return self._error(response_cls, 401, "RepoNotFound", "Repository not found")
        if fault.status is not None:
            return self._error(response_cls, fault.status, None, f"injected {fault.status}")
        return None

    def _refused(self, request: Any, response_cls: Any, repo: str, kind: str) -> Any | None:
        """The hub's answer to a request without the repo's token, or for a repo it does not hold: the same
        RepoNotFound either way (a private repo is not told apart from a missing one)."""
        needed = self.tokens.get(repo)
        if needed is not None and request.headers.get("Authorization") != f"Bearer {needed}":
            return self._error(response_cls, 401, "RepoNotFound", "Repository not found")
        if not (self.root / repo).is_dir():
            return self._error(response_cls, 404 if kind == "files" else 401, "RepoNotFound", "Repository not found")
        return None

    def _file(self, request: Any, response_cls: Any, target: Path, sha: str, fault: Fault | None) -> Any:
        size = target.stat().st_size
        etag = hashlib.sha1(f"{target}:{size}:{target.stat().st_mtime_ns}".encode()).hexdigest()
        headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        start, end = 0, size - 1
        status = 200
        rng = request.headers.get("Range")
        if rng:
            m = _RANGE.match(rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self._error(response_cls, 416, None, "bad range")
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(size - int(m.group(2)), 0), size - 1
            if start >= size or start > end:
                resp = self._error(response_cls, 416, None, "range not satisfiable")
                resp.headers["Content-Range"] = f"bytes */{size}"
                return resp
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            resp = response_cls(b"", status=status, headers=headers)
            resp.headers["Content-Length"] = str(length)  # the file's, not this empty body's
            return resp
        send = length if fault is None or fault.truncate is None else min(fault.truncate, length)

        def body() -> Iterator[bytes]:
            with target.open("rb") as fh:
                fh.seek(start)
                left = send
                while left > 0:
                    chunk = fh.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    left -= len(chunk)
                    yield chunk

        headers["X-Body-Length"] = str(send)
        if send < length:
            headers[_CLOSE] = "1"  # the client sees the cut (end of stream), not a wait for the rest
        resp = response_cls(body(), status=status, headers=headers, direct_passthrough=True)
        return resp

    def _listing(self, request: Any, response_cls: Any) -> Any:
        wanted = request.args.getlist("filter")
        search = request.args.get("search")
        limit = request.args.get("limit", type=int)
        out = []
        for repo in self.repos():
            tags = self._meta(repo)["tags"]
            if any(f not in tags for f in wanted):
                continue
            if search and search.lower() not in repo.lower():
                continue
            out.append({"id": repo, "modelId": repo, "tags": tags, "private": False, "sha": self.commit(repo)})
            if limit is not None and len(out) >= limit:
                break
        return response_cls(json.dumps(out), content_type="application/json")


def client_env(url: str, hf_home: str, values_cap: int = 64 << 20) -> dict[str, str]:
    """The environment of a loravet process that talks to this hub: the machine's own minus any HF_* and
    LORAVET_HUB_* settings, then the hub's endpoint, a fresh HF_HOME, a short timeout, and (by default) the
    opt-in to the adapters' own weight values, so that a report can equal a local copy's."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LORAVET_HUB_"))}
    env.update(
        {
            "HF_ENDPOINT": url,
            "HF_HOME": hf_home,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "LORAVET_HUB_TIMEOUT": "5",
            "LORAVET_HUB_VALUES_CAP": str(values_cap),
        }
    )
    return env
