"""leaderboard.html: the embedded board and its curves, and the page itself driven in headless
Chromium over the DevTools protocol (sorting, filtering, no errors, no network, a screenshot)."""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from artifactbench.analysis.metrics import as_positive
from artifactbench.reports.data import canonical
from artifactbench.reports.format import FAIL_MARK
from artifactbench.reports.leaderboard import (
    F1_GRID,
    build_leaderboard,
    leaderboard_html,
    load_run,
    subset_groups,
    write_leaderboard,
)
from tests.test_leaderboard import make_two_runs

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
_DATA = re.compile(
    r'<script type="application/json" id="board-data">(?P<data>.*?)</script>', re.DOTALL
)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The board of a counting run and a fakeprint run on one bench (as test_leaderboard's
    ``two_runs``), with few resamples: the page does not depend on their number."""
    runs = make_two_runs(tmp_path_factory.mktemp("board_html"))
    return build_leaderboard(list(runs), resamples=200)


def _embedded(html: str) -> dict[str, Any]:
    (data,) = [m.group("data") for m in _DATA.finditer(html)]
    return json.loads(data)


# --- the page as text ------------------------------------------------------------------------


def test_page_embeds_the_board_and_references_nothing_remote(board: dict[str, Any]) -> None:
    html = leaderboard_html(board)
    assert _embedded(html) == board
    assert html.startswith("<!DOCTYPE html>") and html.endswith("</html>\n")
    assert leaderboard_html(copy.deepcopy(board)) == html
    # Nothing is fetched: no remote or protocol-relative src / href, no CSS import or url(),
    # no external script or stylesheet, and a policy that forbids loads anyway.
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z]+:)?//""", html, re.I)
    assert not re.search(r"@import|url\(", html, re.I)
    assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*stylesheet", html, re.I)
    assert "default-src 'none'" in html
    for heading in ("Ranking", "Curves", "Per-subset sanity", "Paired verdicts", "Provenance"):
        assert f">{heading}</h2>" in html
    assert escape(board["pairs"][0]["verdict"]) in html


def test_embedded_data_cannot_close_its_script(board: dict[str, Any]) -> None:
    """A value holding ``</script>`` (a run directory, say) stays data, and shows as text."""
    hostile = copy.deepcopy(board)
    evil = "runs/</script><script>alert(1)</script><!--"
    hostile["provenance"][0]["run_dir"] = evil
    html = leaderboard_html(hostile)
    assert _embedded(html) == hostile
    assert html.count("</script>") == 2  # the data element's and the code's own
    assert html.count("<script") == 2
    assert "runs/&lt;/script&gt;&lt;script&gt;alert(1)" in html


def test_curves_are_sane_and_agree_with_the_ranking(board: dict[str, Any]) -> None:
    assert list(board["curves"]) == [e["model"] for e in board["ranking"]]
    at = F1_GRID.index(board["threshold"])
    for entry in board["ranking"]:
        curves = board["curves"][entry["model"]]
        assert curves["n_scored"] == entry["n_scored"] == curves["n_ai"] + curves["n_real"]
        roc = curves["roc"]
        fpr, tpr = np.array(roc["fpr"]), np.array(roc["tpr"])
        assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        assert roc["thresholds"][0] is None  # +inf: nothing called AI
        assert np.all(np.diff(roc["thresholds"][1:]) < 0)
        # drop_intermediate keeps every corner, so the trapezoids give the ranking's AUC.
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        assert area == pytest.approx(entry["auc"], abs=1e-5)
        f1 = curves["f1"]
        assert f1["thresholds"] == [i / 100 for i in range(101)]
        assert len(f1["f1"]) == 101
        assert f1["f1"][at] == entry["f1"], entry["model"]
        # At threshold 0 every track is called AI: F1 = 2 n_ai / (2 n_ai + n_real).
        everything = 2 * curves["n_ai"] / (2 * curves["n_ai"] + curves["n_real"])
        assert f1["f1"][0] == canonical(everything)


def test_curves_follow_the_predictions(board: dict[str, Any]) -> None:
    """F1 at each grid threshold recounted from the run's own scored rows (AI when
    prob >= t), and the ROC's last threshold is the lowest score."""
    run = load_run(next(e["run"] for e in board["ranking"] if e["model"] == "fakeprint"))
    rows = run.preds[run.preds["status"] == "scored"]
    y = as_positive(rows["label"].astype(str).to_numpy())
    prob = rows["prob"].to_numpy(dtype=float)
    curves = board["curves"]["fakeprint"]
    for t, value in zip(F1_GRID, curves["f1"]["f1"], strict=True):
        called = prob >= t
        tp, fp, fn = int(np.sum(y & called)), int(np.sum(~y & called)), int(np.sum(y & ~called))
        expected = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None
        assert value == canonical(expected), t
    assert curves["roc"]["thresholds"][-1] == canonical(float(prob.min()))


def test_heat_table_marks_failures_and_groups_subsets(board: dict[str, Any]) -> None:
    html = leaderboard_html(board)
    failing = sum(not c["pass"] for cells in board["heat"].values() for c in cells.values())
    assert failing and html.count('class="num fail"') == failing
    assert html.count(f'<span class="mark">{FAIL_MARK}</span>') == failing
    assert board["subsets"]["ai_upsampled"]["origins"] == ["test", "train"]
    groups = subset_groups(board)
    assert groups == {"ai": ["ai_upsampled"], "real": ["real_tones"], "zero-shot": []}
    assert 'value="zero-shot" disabled' in html
    assert 'data-subset="real_tones" data-groups="real"' in html
    # On ArtifactBench a subset wholly in bench_origin=test is in the zero-shot partition.
    ab = copy.deepcopy(board)
    ab["paper_bench"] = "artifactbench"
    ab["subsets"]["real_tones"]["origins"] = ["test"]
    assert subset_groups(ab)["zero-shot"] == ["real_tones"]
    html = leaderboard_html(ab)
    assert 'value="zero-shot" disabled' not in html
    assert 'data-subset="real_tones" data-groups="real zero-shot"' in html


def test_published_figures_are_shown_where_the_board_has_them(board: dict[str, Any]) -> None:
    assert "n/a: the paper reports only ArtifactBench and SONICS" in leaderboard_html(board)
    paper = copy.deepcopy(board)
    paper["paper_bench"] = "artifactbench"
    block = {"value": 0.754, "table": "runner", "paper_name": "Fakeprint LR", "measured": 0.612}
    paper["ranking"][0]["published"]["f1"] = block
    paper["ranking"][0]["published"]["auc"] = {**block, "value": 0.801, "table": "VI"}
    html = leaderboard_html(paper)
    row = re.search(r'<table id="published-table">.*?</table>', html, re.DOTALL)
    assert row is not None
    for text in ("Fakeprint LR", "0.754", "runner", "0.612", "0.801", "Table VI"):
        assert text in row.group(0), text


def test_written_next_to_the_markdown(board: dict[str, Any], tmp_path: Path) -> None:
    paths = write_leaderboard(board, tmp_path)
    assert sorted(paths) == ["leaderboard.html", "leaderboard.json", "leaderboard.md"]
    html = paths["leaderboard.html"].read_text(encoding="utf-8")
    assert html == leaderboard_html(board)
    assert _embedded(html) == json.loads(paths["leaderboard.json"].read_text())


# --- a minimal DevTools client: RFC 6455 over a plain socket -------------------------------------

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocket:
    """Just enough of an RFC 6455 client for DevTools: masked text frames out; text,
    continuation, ping (answered) and close frames in. No websocket package is installed."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        end = self.buffer.index(b"\r\n\r\n")
        status, *lines = self.buffer[:end].decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines)}
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if status.split()[1:2] != ["101"] or headers.get("sec-websocket-accept") != accept:
            raise ConnectionError(f"websocket handshake refused: {status}")

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the browser in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except TimeoutError as exc:  # socket.timeout is TimeoutError from Python 3.10
            raise TimeoutError("no answer from the browser in time") from exc
        if not chunk:
            raise ConnectionError("the browser closed the connection")
        self.buffer += chunk

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self.buffer) < n:
            self._fill(deadline)
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def _send(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def send(self, text: str) -> None:
        self._send(0x1, text.encode())

    def receive(self, deadline: float) -> str:
        message = bytearray()
        while True:
            first, second = self._take(2, deadline)
            if second & 0x80:
                raise ConnectionError("a server frame must not be masked")
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._take(2, deadline))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._take(8, deadline))
            payload = self._take(n, deadline)
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("the browser closed the websocket")
            if opcode == 0x9:
                self._send(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send(0x8, struct.pack("!H", 1000))
        self.sock.close()


class Page:
    """One page target: commands by id, events kept in arrival order for later checks."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.last_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        ident = self.last_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.receive(deadline))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, method: str, since: int, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[since:]:
                if event["method"] == method:
                    return event
            message = json.loads(self.ws.receive(deadline))
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        since = len(self.events)
        result = self.call("Page.navigate", url=url)
        assert not result.get("errorText"), result
        self.wait_for("Page.loadEventFired", since, timeout=15.0)
        assert self.evaluate("document.documentElement.getAttribute('data-ready')") == "true", (
            page_errors(self.events)
        )

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element, as a reader's would be."""
        x, y = self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " el.scrollIntoView({block: 'center'}); const r = el.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


def page_errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and error log entries among the events."""
    out = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console: {[a.get('value') for a in params.get('args', [])]}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            out.append(f"exception: {details.get('exception', {}).get('description', details)}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')}")
    return out


def _http_json(port: int, path: str) -> Any:
    """DevTools' HTTP endpoint, without urllib (which would honour a proxy from the env)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


@contextlib.contextmanager
def chromium_page(workdir: Path) -> Iterator[Page]:
    """Headless Chromium with a fresh profile, and its first page; killed (with every process
    it started) on the way out, so a failure cannot leave a browser behind."""
    assert CHROMIUM is not None
    profile = workdir / "profile"
    profile.mkdir(parents=True)
    args = [
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--no-default-browser-check", "--disable-extensions", "--disable-sync",
        "--disable-background-networking", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "--window-size=1280,900", "about:blank",
    ]  # fmt: skip
    with open(workdir / "chromium.log", "wb") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    ws = None
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 30
        while len(lines := (port_file.read_text() if port_file.is_file() else "").split()) < 2:
            if proc.poll() is not None:
                log_text = (workdir / "chromium.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chromium exited with {proc.returncode}: {log_text}")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port in 30 s")
            time.sleep(0.05)
        port = int(lines[0])
        pages = [t for t in _http_json(port, "/json/list") if t.get("type") == "page"]
        ws = WebSocket(pages[0]["webSocketDebuggerUrl"], timeout=10)
        page = Page(ws)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        yield page
    finally:
        if ws is not None:
            ws.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# --- the page in a browser -------------------------------------------------------------------


def _wide_board(board: dict[str, Any]) -> dict[str, Any]:
    """The real board plus three made-up models and a zero-shot subset, so sorting has rows to
    get wrong (ties none, a missing AUC and precision) and every filter group has members."""
    wide = copy.deepcopy(board)
    template = board["ranking"][0]
    extra = [("zeta", 0.9, None, 0.2), ("alpha", 0.31, 0.93, None), ("mid", 0.5, 0.55, 0.7)]
    for i, (name, f1, auc, precision) in enumerate(extra):
        entry = copy.deepcopy(template)
        entry.update(model=name, f1=f1, auc=auc, precision=precision)
        entry["rank"] = len(board["ranking"]) + i + 1
        wide["ranking"].append(entry)
        wide["heat"][name] = copy.deepcopy(board["heat"][template["model"]])
        wide["curves"][name] = copy.deepcopy(board["curves"][template["model"]])
    wide["paper_bench"] = "artifactbench"
    wide["subsets"]["ai_heldout"] = {
        **board["subsets"]["ai_upsampled"],
        "origins": ["test"],
        "n_tracks": 3,
    }
    wide["subset_order"].append("ai_heldout")
    for cells in wide["heat"].values():
        cells["ai_heldout"] = {"n": 3, "n_failed": 0, "rate": 1.0, "pass": True}
    return wide


def _expected_order(entries: list[dict[str, Any]], key: str, direction: str) -> list[str]:
    """Models sorted by `key` in `direction`, missing values last, ties in board order."""
    present = [e for e in entries if e[key] is not None]
    present.sort(key=lambda e: e[key], reverse=direction == "descending")
    return [e["model"] for e in present] + [e["model"] for e in entries if e[key] is None]


_ROWS = "[...document.querySelectorAll('#ranking-table tbody tr')].map(r => r.dataset.model)"
_SORTS = (
    "Object.fromEntries([...document.querySelectorAll('#ranking-table th')]"
    ".map(th => [th.dataset.key, th.getAttribute('aria-sort')]))"
)
_SHOWN = (
    "[...document.querySelectorAll('#heat tbody tr')]"
    ".filter(r => r.getClientRects().length > 0).map(r => r.dataset.subset)"
)


def test_page_in_headless_chromium(board: dict[str, Any], tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):  # CI installs chromium: this test must run there
            raise RuntimeError("chromium is not on PATH (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not on PATH: the page cannot be driven")
    real = write_leaderboard(board, tmp_path / "real")["leaderboard.html"]
    wide_board = _wide_board(board)
    wide = tmp_path / "wide.html"
    wide.write_text(leaderboard_html(wide_board), encoding="utf-8")
    models = [e["model"] for e in board["ranking"]]

    with chromium_page(tmp_path / "browser") as page:
        # The real page: drawn without errors, one curve per model on each chart.
        page.open(real.as_uri())
        assert page_errors(page.events) == []
        assert page.evaluate(_ROWS) == models
        curves = page.evaluate(
            "['roc-chart', 'f1-chart'].map(id => [...document.querySelectorAll("
            "'#' + id + ' path.curve')].map(p => p.dataset.model))"
        )
        assert curves == [models, models]
        assert (
            page.evaluate("document.querySelectorAll('#f1-chart > svg line.threshold').length") == 1
        )
        legend = page.evaluate("document.querySelector('#roc-chart ul.legend').textContent")
        assert all(m in legend for m in models) and "AUC" in legend
        marks = page.evaluate(
            f"[...document.querySelectorAll('#heat td')].filter(td => td.textContent"
            f".includes({json.dumps(FAIL_MARK)})).length"
        )
        assert marks == sum(not c["pass"] for m in board["heat"].values() for c in m.values())
        assert page.evaluate("document.querySelector('input[value=\"zero-shot\"]').disabled")

        shot = page.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": shot["width"], "height": shot["height"], "scale": 1}
        data = page.call("Page.captureScreenshot", format="png", clip=clip,
                         captureBeyondViewport=True)["data"]  # fmt: skip
        png = tmp_path / "leaderboard.png"
        png.write_bytes(base64.b64decode(data))

        # Narrow screens: the page itself never scrolls sideways (wide tables scroll inside).
        page.call("Emulation.setDeviceMetricsOverride", width=400, height=800,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width <= inner == 400
        page.call("Emulation.clearDeviceMetricsOverride")

        # Sorting, on the wide board: a first click puts the best first, a second reverses,
        # missing values stay last both ways, and aria-sort follows.
        page.open(wide.as_uri())
        entries = wide_board["ranking"]
        assert page.evaluate(_ROWS) == [e["model"] for e in entries]
        assert page.evaluate(_SORTS)["rank"] == "ascending"
        for key, direction in (
            ("auc", "descending"),
            ("auc", "ascending"),
            ("model", "ascending"),
            ("model", "descending"),
            ("precision", "descending"),
            ("precision", "ascending"),
            ("f1", "descending"),
        ):
            before = page.evaluate(_ROWS)
            page.click(f'#ranking-table th[data-key="{key}"] button')
            after = page.evaluate(_ROWS)
            assert after == _expected_order(entries, key, direction), (key, direction)
            assert after != before, (key, direction)
            sorts = page.evaluate(_SORTS)
            assert sorts[key] == direction
            assert all(v == "none" for k, v in sorts.items() if k != key)

        # Filters hide heat rows: each group shows its own subsets only.
        groups = subset_groups(wide_board)
        assert groups["zero-shot"] == ["ai_heldout"]
        assert page.evaluate(_SHOWN) == wide_board["subset_order"]
        for group in ("real", "zero-shot", "ai", "all"):
            page.click(f'input[name="subset-group"][value="{group}"]')
            expected = wide_board["subset_order"] if group == "all" else groups[group]
            assert page.evaluate(_SHOWN) == expected, group
            status = page.evaluate("document.getElementById('heat-status').textContent")
            assert f"Showing {len(expected)} of 3 subsets" in status

        assert page_errors(page.events) == []
        requests = [
            e["params"]["request"]["url"]
            for e in page.events
            if e["method"] == "Network.requestWillBeSent"
        ]
        assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests

        # The error check can fail: a console error and an uncaught exception are both seen.
        since = len(page.events)
        page.evaluate("console.error('probe'); setTimeout(() => { throw new Error('boom'); })")
        page.wait_for("Runtime.exceptionThrown", since)
        seen = page_errors(page.events[since:])
        assert any("probe" in s for s in seen) and any("boom" in s for s in seen)

    raw = png.read_bytes()
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as image:
        image.verify()
    with Image.open(io.BytesIO(raw)) as image:
        assert image.width >= 1000 and image.height >= 1200
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 50  # text, both charts' colours and the heat cells
