"""Headless Chromium for the browser tests, launched one way (Debian's ``chromium``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

from tests.support.system import require_program

HEADLESS_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")


@contextmanager
def headless_chromium(*extra_args: str) -> Iterator[Browser]:
    """A headless Chromium with ``extra_args`` after the standard ones, closed on exit."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=require_program("chromium", "chromium"),
            args=[*HEADLESS_ARGS, *extra_args],
        )
        try:
            yield browser
        finally:
            browser.close()
