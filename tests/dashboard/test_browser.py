"""The dashboard in a real headless Chromium, as an operator sees it."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.dashboard.conftest import TOKEN
from tests.services import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("DAVINCI_TEST_ARTIFACTS", "artifacts"))
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
if CHROMIUM is None and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed here", allow_module_level=True)


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def test_operator_logs_in_and_reads_the_figures(served: str) -> None:
    assert CHROMIUM is not None, "CI installs chromium"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            first = page.goto(served + "/")
            assert first is not None and first.status == 401
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector("#queues")
            assert page.inner_text("#installations").count("textkit-dev") >= 1
            rows = page.locator("#queues table tr")
            assert rows.count() == 3
            assert "pull_request.closed" in page.inner_text("#deliveries")
            assert page.inner_text("[data-figure=records]") == "3"
            assert page.inner_text("[data-figure=acceptance_rate]") == "75%"
            assert page.inner_text("[data-figure=mean_tool_calls]") == "6.0"
            assert page.locator("#growth polyline").count() == 1
            assert "#1 —references→ #2 —fixes→ #4" in " ".join(
                page.inner_text("#chains").split())
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"dashboard screenshot: {shot.resolve()}")
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
