"""The report as a browser sees it: headless Chromium renders report.html offline.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: file
descriptors 3 and 4, NUL-terminated JSON), so no websocket client is needed. The page's own network
activity is observed with ``Network.requestWillBeSent`` on the page's session: that lists every
request the page attempts, including ones the report's Content-Security-Policy then blocks, and none
of Chromium's background traffic (updates, sign-in), which a net-log would mix in. A control page
that does reference the network proves the check can fail.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import HOSTILE_ITEM, write_run

from attnaudit.reports.html import build_report

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (bash .ci/ensure-chromium.sh installs it); "
    "the report rendering test needs a headless browser",
)
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--mute-audio", "--hide-scrollbars",
)
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:", "chrome:", "devtools:")
TIMEOUT_S = 20.0

# Run in the page after the screenshot: what rendered once the inline script ran, then what the
# model selector, the example filter and the shading buttons do when clicked.
PROBE = """(async function(){
  function visible(el){ return el.offsetParent !== null; }
  function pause(){ return new Promise(function(r){ setTimeout(r, 50); }); }
  var panels = [].slice.call(document.querySelectorAll('.model-panel'));
  var out = {
    url: document.URL, ready: document.readyState,
    js: document.documentElement.classList.contains('js'),
    tables: document.querySelectorAll('main table').length,
    accuracyRows: document.querySelectorAll('#accuracy tbody tr').length,
    images: [].map.call(document.images, function(i){
      return {ok: i.complete && i.naturalWidth > 0, data: i.src.startsWith('data:')}; }),
    panels: panels.length,
    visiblePanels: panels.filter(visible).map(function(p){ return p.id; }),
    examples: document.querySelectorAll('article.example').length,
    items: document.querySelectorAll('article.example .doc .it').length,
    scripts: document.scripts.length,
    hostileText: [].some.call(document.querySelectorAll('.doc .it'),
      function(s){ return s.textContent === %s; }),
    stickyHeader: getComputedStyle(document.querySelector('thead')).position
  };
  var details = document.querySelector('.model-panel.active .example details');
  details.open = true; await pause();
  out.tableRows = details.querySelectorAll('tbody tr').length;
  out.tableItems = details.closest('.example').querySelectorAll('.doc .it').length;
  out.removedCells = details.querySelectorAll('tbody .gone').length;
  var tabs = document.querySelectorAll('.tabs a.tab');
  tabs[tabs.length - 1].click(); await pause();
  out.afterTab = panels.filter(visible).map(function(p){ return p.id; });
  out.tabTarget = tabs[tabs.length - 1].dataset.model;
  var box = document.querySelector('.model-panel.active .examples');
  box.querySelector('[data-filter="never_flips"]').click(); await pause();
  var shown = [].filter.call(box.querySelectorAll('.example'), visible);
  out.filtered = shown.map(function(e){ return e.dataset.category; });
  shown[0].querySelector('button[data-view="g"]').click();
  shown[0].querySelector('button[data-removed="attention"]').click();
  var doc = shown[0].querySelector('.doc');
  out.view = doc.dataset.view + '/' + doc.dataset.removed;
  out.shaded = getComputedStyle(doc.querySelector('.it')).backgroundColor;
  return JSON.stringify(out);
})()"""


@dataclass
class PageLoad:
    """What one headless page load produced."""

    probe: dict[str, Any]
    requests: list[str]
    console_errors: list[str]
    exceptions: list[str]
    dom: str
    screenshot: bytes = field(repr=False)

    @property
    def remote_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


class DevToolsPipe:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, argv: list[str]) -> None:
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        # Move Chrome's ends above 9 so the shell's redirections to fds 3 and 4 cannot clobber them.
        child_in = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        script = f'exec "$0" "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        self.proc = subprocess.Popen(["bash", "-c", script, *argv], pass_fds=(child_in, child_out),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(child_in)
        os.close(child_out)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, method: str, *, after: int = 0) -> dict[str, Any]:
        """The first ``method`` event among ``events[after:]``, waiting for it if need be."""
        for event in self.events[after:]:
            if event.get("method") == method:
                return event
        while True:
            event = self._receive()
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return dict(json.loads(raw))

    def close(self) -> None:
        # Already gone is fine: the wait and kill below make sure it is.
        with contextlib.suppress(OSError, EOFError, RuntimeError, TimeoutError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


def _attach_to_page(chrome: DevToolsPipe) -> str:
    """A session on the browser's page, opening one if the start page is not there yet."""
    targets = chrome.call("Target.getTargets")["targetInfos"]
    pages = [t["targetId"] for t in targets if t["type"] == "page"]
    target = pages[0] if pages else chrome.call("Target.createTarget", {"url": "about:blank"})[
        "targetId"]
    return str(chrome.call("Target.attachToTarget",
                           {"targetId": target, "flatten": True})["sessionId"])


def load_page(
    page: Path, profile: Path, *, probe: str = "'{}'", width: int = 1400, height: int = 2400
) -> PageLoad:
    """Open ``page`` in a fresh headless Chromium; return what it rendered and requested.

    The screenshot and the DOM are taken right after the load event; then ``probe``, a JavaScript
    expression giving a JSON string (or a promise of one), runs in the page.
    """
    chrome = DevToolsPipe([CHROMIUM or "chromium", *FLAGS, f"--user-data-dir={profile}",
                           "--remote-debugging-pipe", f"--window-size={width},{height}",
                           "about:blank"])
    try:
        session = _attach_to_page(chrome)
        for domain in ("Network", "Page", "Runtime", "Log"):
            chrome.call(f"{domain}.enable", session=session)
        chrome.call("Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                    session=session)
        seen = len(chrome.events)  # a load event of about:blank must not count as ours
        chrome.call("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        chrome.wait_for("Page.loadEventFired", after=seen)
        shot = chrome.call("Page.captureScreenshot", {"format": "png"}, session=session)
        dom = chrome.call("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                               "returnByValue": True}, session=session)
        result = chrome.call("Runtime.evaluate", {"expression": probe, "returnByValue": True,
                                                  "awaitPromise": True}, session=session)
    finally:
        chrome.close()
    events = chrome.events
    return PageLoad(
        probe=json.loads(result["result"].get("value", "null")),
        requests=[e["params"]["request"]["url"] for e in events
                  if e.get("method") == "Network.requestWillBeSent"],
        console_errors=[e["params"]["entry"]["text"] for e in events
                        if e.get("method") == "Log.entryAdded"
                        and e["params"]["entry"]["level"] == "error"],
        exceptions=[json.dumps(e["params"]["exceptionDetails"])[:500] for e in events
                    if e.get("method") == "Runtime.exceptionThrown"],
        dom=dom["result"]["value"],
        screenshot=base64.b64decode(shot["data"]),
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run = write_run(tmp_path_factory.mktemp("browser") / "run", ("flan-rnn", "han-cnn"),
                    n_docs=60)
    yield build_report(run)


def test_report_renders_offline(report: Path, tmp_path: Path) -> None:
    page = load_page(report, tmp_path / "profile", probe=PROBE % json.dumps(HOSTILE_ITEM))
    shot = report.parent / "report-screenshot.png"
    shot.write_bytes(page.screenshot)
    print(f"screenshot: {shot}")  # shown with pytest -rP; worth a look after changing the report

    assert page.remote_requests == [], "the report must not touch the network"
    assert page.console_errors == [] and page.exceptions == []
    assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 50_000
    p = page.probe
    assert p["url"] == report.resolve().as_uri() and p["ready"] == "complete"
    assert p["js"], "the inline script did not run"
    assert p["accuracyRows"] == 2
    assert p["tables"] >= 2 + 2 * 3  # accuracy, comparison; per model three tables and more
    assert len(p["images"]) == 4 * 2 + 6  # four figures per model and six across models
    assert all(i["ok"] and i["data"] for i in p["images"]), p["images"]
    assert p["panels"] == 2 and p["visiblePanels"] == ["m-flan-rnn"]  # one model at a time
    assert p["examples"] >= 8 and p["items"] > 50
    assert p["hostileText"], "document text is shown as text"
    assert p["scripts"] == 1, "document text must not become a script"
    assert p["stickyHeader"] == "sticky"
    # The DOM as rendered (what --dump-dom prints): the script marked the first panel active.
    assert 'class="model-panel active" id="m-flan-rnn"' in page.dom
    # Clicking works: per-item table, model selector, example filter, shading, removal outline.
    assert p["tableRows"] == p["tableItems"] > 1 and p["removedCells"] > 0
    assert p["afterTab"] == [p["tabTarget"]] == ["m-han-cnn"]
    assert p["filtered"] and set(p["filtered"]) == {"never_flips"}
    assert p["view"] == "g/attention"
    assert p["shaded"] != "rgba(0, 0, 0, 0)"


def test_network_check_catches_a_remote_reference(tmp_path: Path) -> None:
    """Control: the same probe does see a page that reaches for the network."""
    page = tmp_path / "control.html"
    page.write_text('<html><body><p>x</p><img src="http://127.0.0.1:9/a.png">'
                    '<link rel="stylesheet" href="https://example.invalid/a.css"></body></html>',
                    encoding="utf-8")
    load = load_page(page, tmp_path / "profile", probe="'{}'", width=400, height=300)
    assert "http://127.0.0.1:9/a.png" in load.remote_requests
    assert "https://example.invalid/a.css" in load.remote_requests
