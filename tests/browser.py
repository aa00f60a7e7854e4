"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Playwright's own browser download is never used (``playwright install`` needs the network);
the tests skip, with the reason, only when Chromium or Playwright is missing. Every request
that leaves the machine is aborted and recorded, so a test can assert that a page is
offline-clean instead of silently fetching from a CDN.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[1]
# Git-ignored (data/**), so screenshots can be looked at after a run without being committed.
SCREENSHOTS = REPO / "data" / "08_reporting" / "screenshots"
CHROMIUM = Path(os.environ.get("HAR_KEDRO_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOCAL_SCHEMES = {"file", "data", "blob", "about"}


def require_chromium() -> None:
    """Skip the calling test, naming what is missing and how to get it."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Playwright for Python is not installed: pip install -e '.[test]'")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (Debian), "
            "or point HAR_KEDRO_CHROMIUM at a Chromium binary"
        )


def is_local(url: str) -> bool:
    """True for file:, data:, blob: and about: URLs and for http(s) to this machine."""
    parsed = urlparse(url)
    if parsed.scheme in LOCAL_SCHEMES:
        return True
    return parsed.scheme in {"http", "https", "ws", "wss"} and parsed.hostname in {h.strip("[]") for h in LOCAL_HOSTS}


@dataclass
class Browser:
    """A Playwright browser context plus the list of off-machine requests it refused."""

    context: object
    external_requests: list[str] = field(default_factory=list)

    def new_page(self):  # -> playwright.sync_api.Page
        return self.context.new_page()


@contextmanager
def chromium(viewport: tuple[int, int] = (1600, 1000), local_storage: dict[str, str] | None = None) -> Iterator[Browser]:
    """A fresh headless Chromium (own user-data dir) that aborts and records every external request.

    ``local_storage`` is written before any page script runs, e.g. to switch off a web app's
    first-visit tour so it does not cover the screenshot.
    """
    require_chromium()
    from playwright.sync_api import sync_playwright

    user_data = Path(tempfile.mkdtemp(prefix="har-chromium-"))
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(user_data),
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            browser = Browser(context)

            def route(route) -> None:  # playwright.sync_api.Route
                url = route.request.url
                if is_local(url):
                    route.continue_()
                else:
                    browser.external_requests.append(url)
                    route.abort()

            context.route("**/*", route)
            if local_storage:
                script = "".join(f"window.localStorage.setItem({k!r}, {v!r});" for k, v in local_storage.items())
                context.add_init_script(script)
            try:
                yield browser
            finally:
                context.close()
    finally:
        shutil.rmtree(user_data, ignore_errors=True)


def wait_until_still(page, selector: str, timeout_s: float = 30.0, still_s: float = 0.75) -> None:
    """Wait until the boxes of every ``selector`` element stop moving (layout and zoom animations done)."""
    script = (
        "sel => JSON.stringify(Array.from(document.querySelectorAll(sel)).map(e => {"
        " const b = e.getBoundingClientRect(); return [Math.round(b.x), Math.round(b.y), Math.round(b.width)]; }))"
    )
    deadline = time.monotonic() + timeout_s
    last, still_since = None, time.monotonic()
    while time.monotonic() < deadline:
        boxes = page.evaluate(script, selector)
        if boxes != last:
            last, still_since = boxes, time.monotonic()
        elif boxes != "[]" and time.monotonic() - still_since >= still_s:
            return
        time.sleep(0.1)
    raise AssertionError(f"elements matching {selector!r} were still moving (or absent) after {timeout_s:.0f} s")


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name
