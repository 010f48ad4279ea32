"""A Hugging Face Hub on 127.0.0.1 for the tests: the part of its HTTP API that
`huggingface_hub` (`hf_hub_download`, `snapshot_download`, `HfApi` info, tree and paths-info)
and `datasets` (streaming through `HfFileSystem`) use, served from repositories held in memory.

Revisions resolve to commits (`X-Repo-Commit`); large files are LFS files whose resolve answers
302 to a second origin, the "CDN", with `X-Linked-Etag` (their sha256) and `X-Linked-Size`, as
the Hub does; small files answer directly with their git blob id as ETag. GETs honour a single
`Range`. Missing repos, revisions and files are 404s with the Hub's `X-Error-Code`. Faults for
the tests: `cut` (the next GET of a file sends part of its body, then the connection drops) and
`stall` (the next GET sends part, then waits until released). Every request is logged.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

LFS_SUFFIXES = (".bin", ".onnx", ".data", ".safetensors", ".parquet", ".pth", ".npy")
LFS_MIN_BYTES = 10_000
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str, data: bytes) -> bool:
    return path.endswith(LFS_SUFFIXES) or len(data) >= LFS_MIN_BYTES


@dataclass
class Repo:
    kind: str  # "model" or "dataset"
    repo_id: str
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


@dataclass
class Logged:
    method: str
    path: str
    range: str | None


@dataclass
class Fault:
    after: int
    stall: threading.Event | None = None
    reached: threading.Event = field(default_factory=threading.Event)


class LocalHub:
    """`with LocalHub() as hub:` serves until the block ends; `hub.endpoint` goes in HF_ENDPOINT."""

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.log: list[Logged] = []
        self.faults: dict[str, Fault] = {}
        self._servers: list[ThreadingHTTPServer] = []

    # --- content -----------------------------------------------------------------------------
    def commit(
        self,
        kind: str,
        repo_id: str,
        files: dict[str, bytes],
        branch: str = "main",
        sha: str | None = None,
    ) -> str:
        """A new commit holding exactly `files` (its id `sha`, e.g. a card's pinned commit, or
        one derived from the content), on `branch`; returns its 40-hex id."""
        repo = self.repos.setdefault((kind, repo_id), Repo(kind, repo_id))
        if sha is None:
            digest = hashlib.sha1(f"{kind}/{repo_id}#{len(repo.commits)}".encode())
            for name in sorted(files):
                digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
            sha = digest.hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[branch] = sha
        for name, data in files.items():
            if is_lfs(name, data):
                self.blobs[hashlib.sha256(data).hexdigest()] = data
        return sha

    def tamper(self, kind: str, repo_id: str, name: str, data: bytes) -> None:
        """Serve other bytes for `name` in every commit, as a broken mirror would."""
        for files in self.repos[(kind, repo_id)].commits.values():
            if name in files:
                files[name] = data
        if is_lfs(name, data):
            self.blobs[hashlib.sha256(data).hexdigest()] = data

    def cut(self, name: str, after: int) -> None:
        """The next GET of a file called `name` drops the connection after `after` bytes."""
        self.faults[name] = Fault(after)

    def stall(self, name: str, after: int) -> Fault:
        """The next GET of `name` sends `after` bytes, then waits for `fault.stall` to be set."""
        fault = Fault(after, threading.Event())
        self.faults[name] = fault
        return fault

    def ranges(self, name: str) -> list[str | None]:
        """The Range header of every GET that served `name` (a resolve or its CDN blob)."""
        blobs = {
            hashlib.sha256(files[name]).hexdigest()
            for repo in self.repos.values()
            for files in repo.commits.values()
            if name in files
        }
        return [
            r.range
            for r in self.log
            if r.method == "GET"
            and (r.path.endswith("/" + name) or r.path.rsplit("/", 1)[-1] in blobs)
        ]

    # --- serving -----------------------------------------------------------------------------
    def __enter__(self) -> LocalHub:
        hub = self

        class Handler(_Handler):
            served = hub

        for _ in range(2):  # the hub, then the CDN origin LFS files redirect to
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc: object) -> None:
        for fault in self.faults.values():
            if fault.stall is not None:
                fault.stall.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    served: LocalHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet: the hub keeps its own log
        pass

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    # --- routing -----------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        hub = self.served
        url = urlsplit(self.path)
        path = url.path
        hub.log.append(Logged(method, path, self.headers.get("Range")))
        query = parse_qs(url.query)
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            query.update(parse_qs(self.rfile.read(length).decode()))
        if path.startswith("/blobs/"):
            return self._blob(method, path.removeprefix("/blobs/"))
        api = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/(.*))?", path)
        if api:
            kind, repo_id, rest = api.group(1)[:-1], api.group(2), api.group(3) or ""
            return self._api(method, kind, repo_id, rest, query)
        resolve = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if resolve:
            kind = "dataset" if resolve.group(1) else "model"
            repo_id, revision, name = resolve.group(2), resolve.group(3), unquote(resolve.group(4))
            return self._resolve(method, kind, repo_id, revision, name)
        self._error(404, "NotFound", f"no route {path}")

    def _repo(self, kind: str, repo_id: str, revision: str) -> tuple[Repo, str] | None:
        repo = self.served.repos.get((kind, repo_id))
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository Not Found for {repo_id}")
            return None
        sha = repo.resolve(revision)
        if sha is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {unquote(revision)}", None)
            return None
        return repo, sha

    # --- API ---------------------------------------------------------------------------------
    def _api(self, method: str, kind: str, repo_id: str, rest: str, query: dict) -> None:
        verb, _, tail = rest.partition("/")
        if verb in ("", "revision") and method == "GET":
            found = self._repo(kind, repo_id, tail or "main")
            if found:
                self._json(self._info(*found))
        elif verb == "tree" and method == "GET":
            revision, _, folder = tail.partition("/")
            found = self._repo(kind, repo_id, revision)
            if found:
                recursive = query.get("recursive", ["false"])[0].lower() == "true"
                entries = _tree(found[0].commits[found[1]], unquote(folder), recursive)
                if entries is None:
                    self._error(404, "EntryNotFound", f"{folder} does not exist", found[1])
                else:
                    self._json(entries)
        elif verb == "paths-info" and method == "POST":
            found = self._repo(kind, repo_id, tail)
            if found:
                files = found[0].commits[found[1]]
                entries = [_entry_for(files, p) for p in query.get("paths", [])]
                self._json([e for e in entries if e is not None])
        else:
            self._error(404, "NotFound", f"no API route {rest}")

    def _info(self, repo: Repo, sha: str) -> dict:
        files = repo.commits[sha]
        return {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": sha,
            "lastModified": "2026-01-01T00:00:00.000Z",
            "private": False,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "cardData": {},
            "siblings": [{"rfilename": name} for name in sorted(files)],
        }

    # --- files -------------------------------------------------------------------------------
    def _resolve(self, method: str, kind: str, repo_id: str, revision: str, name: str) -> None:
        found = self._repo(kind, repo_id, revision)
        if not found:
            return
        repo, sha = found
        files = repo.commits[sha]
        if name not in files:
            self._error(404, "EntryNotFound", f"{name} does not exist at {sha}", sha)
            return
        data = files[name]
        headers = {"X-Repo-Commit": sha}
        if is_lfs(name, data):
            digest = hashlib.sha256(data).hexdigest()
            headers |= {
                "X-Linked-Etag": f'"{digest}"',
                "X-Linked-Size": str(len(data)),
                "ETag": f'"{digest}"',
                "Location": f"{self.served.cdn}/blobs/{digest}?name={name}",
                "Content-Length": "0",
            }
            self._send(302, headers, b"", method)
            return
        headers["ETag"] = f'"{git_blob_id(data)}"'
        self._body(method, name, data, headers)

    def _blob(self, method: str, digest: str) -> None:
        data = self.served.blobs.get(digest)
        if data is None:
            self._error(404, "NotFound", "no such blob")
            return
        name = parse_qs(urlsplit(self.path).query).get("name", [""])[0]
        self._body(method, name, data, {"ETag": f'"{digest}"'})

    def _body(self, method: str, name: str, data: bytes, headers: dict[str, str]) -> None:
        start, status = 0, 200
        wanted = _RANGE.match(self.headers.get("Range") or "")
        if wanted:
            start = int(wanted.group(1))
            end = int(wanted.group(2)) if wanted.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                self._send(416, {"Content-Range": f"bytes */{len(data)}"}, b"", method)
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        headers["Accept-Ranges"] = "bytes"
        fault = self.served.faults.pop(name.rsplit("/", 1)[-1], None) if method == "GET" else None
        if fault is None:
            self._send(status, headers, data, method)
            return
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data[: fault.after])
        self.wfile.flush()
        fault.reached.set()
        if fault.stall is not None:
            fault.stall.wait(timeout=120)
        self.close_connection = True
        self.connection.shutdown(2)

    def _send(self, status: int, headers: dict[str, str], body: bytes, method: str) -> None:
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if method != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, payload: object) -> None:
        body = json.dumps(payload).encode()
        self._send(200, {"Content-Type": "application/json"}, body, self.command)

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "X-Error-Code": code,
                   "X-Error-Message": message}  # fmt: skip
        if commit:
            headers["X-Repo-Commit"] = commit
        self._send(status, headers, body, self.command)


def _entry_for(files: dict[str, bytes], path: str) -> dict | None:
    path = path.strip("/")
    if path in files:
        data = files[path]
        entry: dict = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
        if is_lfs(path, data):
            digest = hashlib.sha256(data).hexdigest()
            entry["lfs"] = {"oid": digest, "size": len(data), "pointerSize": 130}
        return entry
    if any(name.startswith(path + "/") for name in files) or path == "":
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path}
    return None


def _tree(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict] | None:
    folder = folder.strip("/")
    prefix = f"{folder}/" if folder else ""
    if folder and not any(name.startswith(prefix) for name in files):
        return None
    paths: set[str] = set()
    for name in files:
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix) :].split("/")
        depth = len(parts) if recursive else 1
        for i in range(1, depth + 1):
            paths.add(prefix + "/".join(parts[:i]))
    entries = [_entry_for(files, p) for p in sorted(paths)]
    return [e for e in entries if e is not None]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """A running LocalHub that every Hugging Face client in this test and its subprocesses
    talks to (`HF_ENDPOINT`), online, with a Hugging Face home of its own."""
    for offline in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(offline, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with LocalHub() as served:
        monkeypatch.setenv("HF_ENDPOINT", served.endpoint)
        yield served
