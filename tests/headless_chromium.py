"""Headless Chromium for report tests: load a page offline and see what it rendered and requested.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: file
descriptors 3 and 4, NUL-terminated JSON), so no websocket client is needed. The page's own network
activity is observed with ``Network.requestWillBeSent`` on the page's session: that lists every
request the page attempts, including ones the report's Content-Security-Policy then blocks, and none
of Chromium's background traffic (updates, sign-in), which a net-log would mix in.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
#: Mark for tests that need the browser: they skip, saying why, where it is not installed.
requires_chromium = pytest.mark.skipif(
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
