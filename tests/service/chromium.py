"""Drive Debian's headless ``chromium`` over the DevTools protocol on a pipe: load a page, wait, look.

Why a pipe (``--remote-debugging-pipe``) and not selenium or a websocket client: Chromium reads protocol
commands from its fd 3 and writes replies to its fd 4, NUL-separated JSON, so the standard library is the
whole client (no new dependency, no chromedriver, no debugging port on the network). The protocol lets
the test wait for a condition in the page, which ``--dump-dom`` after a virtual-time budget cannot.

Every wait is bounded in time; ``close`` ends the browser (Browser.close, else SIGKILL to its process
group) and the profile lives in a directory the caller owns.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

#: Flags that work on this kind of machine (root, no GPU, no network but loopback).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
    "--window-size=1280,1600",
)


def chromium_binary() -> str | None:
    return shutil.which("chromium")


class Chromium:
    """One headless browser with one page, attached with a flat DevTools session."""

    def __init__(self, profile: Path, timeout: float = 60.0) -> None:
        binary = chromium_binary()
        if binary is None:
            raise FileNotFoundError("chromium is not installed")
        self._timeout = timeout
        self._next_id = 0
        self._buffer = b""
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def wire_fds() -> None:  # runs in the child: Chromium expects the pipe on fds 3 and 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_read, from_browser_write)]
            os.dup2(high[0], 3)  # through high numbers, so one dup2 cannot overwrite the other's source
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds,  # the child runs only dup2 calls before exec
            close_fds=True,
            start_new_session=True,
            pass_fds=(3, 4),  # the numbers wire_fds fills; everything else is closed after it ran
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        except BaseException:
            self.close()
            raise

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are dropped."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self._timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call(method, self._session, **params)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise ConnectionError("chromium closed its DevTools pipe")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    def navigate(self, url: str) -> None:
        self.page("Page.enable")
        self.page("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float, interval: float = 0.25) -> Any:
        """Evaluate ``expression`` until it is truthy (at most ``timeout`` seconds); return its last value."""
        deadline = time.monotonic() + timeout
        value = None
        for _attempt in range(int(timeout / interval) + 1):
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                break
            time.sleep(interval)
        return value

    def screenshot(self, path: Path) -> Path:
        data = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        with contextlib.suppress(OSError, TimeoutError, ConnectionError, RuntimeError):
            if self.proc.poll() is None:
                self.call("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # the browser and its helpers share one new process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
