"""A small, dependency-free driver for headless Chromium, for tests of the built site.

Chromium is started with ``--remote-debugging-pipe``: the DevTools protocol travels as
NUL-terminated JSON messages over two pipes (Chromium reads commands on its fd 3 and
writes replies and events on its fd 4), so no websocket library and no browser download is
needed — only Debian's ``chromium``. The browser runs with a fresh profile in a temporary
directory and every name resolves to nothing but loopback (``--host-resolver-rules``), so a
page that tries to fetch anything from the internet fails to, and :class:`Page` records
every request it made so that a test can assert the page stayed local.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

#: Where Debian's package installs the browser; ``chromium`` on PATH is tried first.
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    # The network is off: every host name fails to resolve except loopback addresses.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--remote-debugging-pipe",
)


class BrowserError(RuntimeError):
    """Chromium exited, answered a command with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """The path of a Chromium executable, or None when none is installed."""
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium process driven over the DevTools pipe.

    Use :func:`launch`; it closes the browser and removes its profile on exit.
    """

    def __init__(self, executable: str, profile: Path, log: Path) -> None:
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        actions = [
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
            (os.POSIX_SPAWN_DUP2, to_browser_read, 3),
            (os.POSIX_SPAWN_DUP2, from_browser_write, 4),
        ]
        argv = [executable, *_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        try:
            self._pid: int | None = os.posix_spawn(
                executable, argv, os.environ, file_actions=actions
            )
        finally:
            for fd in (to_browser_read, from_browser_write, log_fd, devnull):
                os.close(fd)
        self._log = log
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    # -- protocol ------------------------------------------------------------------------

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept
        for :meth:`wait_event`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self._read(deadline, f"the reply to {method}"):
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise BrowserError(f"{method} failed: {reply['error']}")
                    result: dict[str, Any] = reply.get("result", {})
                    return result
                self._events.append(reply)

    def wait_event(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        *,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """The first event named ``method`` (kept or new) whose message satisfies
        ``predicate``; events before it stay queued."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method and predicate(event):
                    del self._events[index]
                    return event
            self._events.extend(self._read(deadline, f"the event {method}"))

    def drain_events(self, method: str) -> list[dict[str, Any]]:
        """Remove and return every queued event named ``method``."""
        self._poll()
        taken = [e for e in self._events if e.get("method") == method]
        self._events = [e for e in self._events if e.get("method") != method]
        return taken

    def _poll(self) -> None:
        """Queue whatever the browser has already written, without waiting."""
        while select.select([self._from_browser], [], [], 0)[0]:
            if not self._fill():
                return
            self._events.extend(self._messages())

    def _read(self, deadline: float, waiting_for: str) -> list[dict[str, Any]]:
        """At least one message, waiting until ``deadline``."""
        while True:
            messages = self._messages()
            if messages:
                return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"Chromium did not send {waiting_for} in time")
            if select.select([self._from_browser], [], [], remaining)[0] and not self._fill():
                raise BrowserError(
                    f"Chromium exited while waiting for {waiting_for}; its log:\n"
                    + self._log.read_text(errors="replace")[-3000:]
                )

    def _fill(self) -> bool:
        chunk = os.read(self._from_browser, 1 << 20)
        self._buffer += chunk
        return bool(chunk)

    def _messages(self) -> list[dict[str, Any]]:
        *complete, self._buffer = self._buffer.split(b"\0")
        return [json.loads(raw) for raw in complete]

    # -- pages ---------------------------------------------------------------------------

    def new_page(self, width: int = 1280, height: int = 900) -> Page:
        """A new tab of ``width`` x ``height`` CSS pixels, attached and ready to navigate."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        return Page(self, session, width, height)

    def close(self) -> None:
        """Ask Chromium to exit, kill it if it does not, and close the pipes."""
        if self._pid is None:
            return
        pid, self._pid = self._pid, None
        with suppress(BrowserError, OSError):
            self.send("Browser.close", timeout=10)
        for _ in range(100):
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(self._to_browser)
        os.close(self._from_browser)


class Page:
    """One tab: navigate, evaluate JavaScript, take screenshots, list its requests."""

    def __init__(self, browser: Browser, session: str, width: int, height: int) -> None:
        self._browser = browser
        self._session = session
        self.requests: list[str] = []
        self.send("Page.enable")
        self.send("Network.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A DevTools command in this tab's session."""
        return self._browser.send(method, params, session=self._session)

    def add_init_script(self, source: str) -> None:
        """Run ``source`` in every document of this tab before the page's own scripts."""
        self.send("Page.addScriptToEvaluateOnNewDocument", {"source": source})

    def goto(self, url: str, *, timeout: float = 60.0) -> None:
        """Load ``url`` and wait for its load event."""
        frame = self.send("Page.navigate", {"url": url})
        if frame.get("errorText"):
            raise BrowserError(f"loading {url} failed: {frame['errorText']}")
        self._browser.wait_event(
            "Page.loadEventFired", lambda e: e.get("sessionId") == self._session, timeout=timeout
        )

    def collect_requests(self) -> list[str]:
        """The URLs requested since the last call (also appended to :attr:`requests`)."""
        new = [
            e["params"]["request"]["url"]
            for e in self._browser.drain_events("Network.requestWillBeSent")
            if e.get("sessionId") == self._session
        ]
        self.requests += new
        return new

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited)."""
        reply = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"JavaScript error: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float = 60.0, interval: float = 0.05) -> Any:
        """Poll ``expression`` until it is truthy and return it; raise :class:`BrowserError`
        with the last value when ``timeout`` passes first (a bound on a hang, not a
        performance assertion)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{expression!r} stayed {value!r}")
            time.sleep(interval)

    def screenshot(self, path: Path, *, selector: str | None = None, index: int = 0) -> None:
        """Save a PNG of the whole page, or of the ``index``-th element matching
        ``selector``."""
        if selector is None:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            box = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000)}
        else:
            box = self.evaluate(
                f"(() => {{ const r = document.querySelectorAll({json.dumps(selector)})"
                f"[{index}].getBoundingClientRect(); return {{x: r.x + scrollX, "
                "y: r.y + scrollY, width: r.width, height: r.height}; })()"
            )
        data = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": {**box, "scale": 1}},
        )["data"]
        path.write_bytes(base64.b64decode(data))


@contextmanager
def launch(executable: str) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile, closed and cleaned up on exit."""
    with tempfile.TemporaryDirectory(prefix="fsmflow-chromium-") as tmp:
        profile = Path(tmp) / "profile"
        profile.mkdir()
        browser = Browser(executable, profile, Path(tmp) / "chromium.log")
        try:
            yield browser
        finally:
            browser.close()
