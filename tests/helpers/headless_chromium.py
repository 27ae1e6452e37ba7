"""Open a page in headless Chromium and ask it questions, over chromedriver's W3C WebDriver HTTP API (no selenium).

Debian's ``chromium`` and ``chromium-driver`` packages provide both programs (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from typing import Any, Iterator

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url: str, method: str = "GET", body: dict | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["value"]


class Page:
    def __init__(self, base: str):
        self.base = base

    def open(self, url: str) -> None:
        _call(f"{self.base}/url", "POST", {"url": url})

    def run(self, script: str) -> Any:
        """The value of a JavaScript function body (``return ...``) run in the page."""
        return _call(f"{self.base}/execute/sync", "POST", {"script": script, "args": []})


@contextmanager
def headless_page() -> Iterator[Page]:
    port = _free_port()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _call(f"{root}/status")
                break
            except OSError:
                time.sleep(0.1)
        options = {"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]}
        session = _call(f"{root}/session", "POST", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}})
        base = f"{root}/session/{session['sessionId']}"
        try:
            yield Page(base)
        finally:
            _call(base, "DELETE")
    finally:
        driver.terminate()
        driver.wait(timeout=10)
