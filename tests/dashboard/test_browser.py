"""The dashboard in a real headless Chromium, as an operator sees it."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.dashboard.conftest import TOKEN
from tests.services import free_port
from tests.states import NO_ENVIRONMENT, NO_STAGE, REPOSITORY, Arranged

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("DAVINCI_TEST_ARTIFACTS", "artifacts"))
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
if CHROMIUM is None and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed here", allow_module_level=True)


def serve(app: Flask) -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    yield from serve(app)


@pytest.fixture
def served_states(states_app: Flask) -> Iterator[str]:
    yield from serve(states_app)


def logged_in(browser: Any, url: str) -> Any:
    page = browser.new_page()
    page.goto(url + "/")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#queues")
    return page


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / name
    page.screenshot(path=str(shot), full_page=True)
    print(f"dashboard screenshot: {shot.resolve()}")
    assert shot.stat().st_size > 10_000


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
            screenshot(page, "dashboard.png")
        finally:
            browser.close()


def test_operator_sees_each_chain_as_it_is(served_states: str, states: Arranged) -> None:
    """Accepted, not eligible (and why), failed and retrying: the same words as `davinci
    chains list`, the retry counted in the queues, the funnel counting every rollout."""
    assert CHROMIUM is not None, "CI installs chromium"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = logged_in(browser, served_states)

            def chain_state(chain_id: str) -> str:
                return page.inner_text(f"#chains tr[data-chain='{chain_id}'] td.state")

            assert chain_state(states.accepted) == "accepted (score 0.90)"
            assert chain_state(states.not_eligible) == f"not eligible: {NO_STAGE}"
            assert chain_state(states.no_environment) == f"not eligible: {NO_ENVIRONMENT}"
            retrying = chain_state(states.retrying)
            assert retrying.startswith("failed, retrying at ")
            assert "UTC: fetching the repository failed" in retrying
            rollouts = page.locator("tr[data-queue=davinci-rollouts]")
            assert rollouts.locator("[data-count=retrying]").inner_text() == "1"
            assert rollouts.locator("[data-count=failed]").inner_text() == "0"
            assert states.retrying_job in page.inner_text("#retrying-jobs")
            delivery = page.inner_text("tr[data-delivery=d-retry]")
            assert "retrying at" in delivery and "enqueued" in delivery
            run = page.inner_text(f"#rollouts tr[data-run='{states.accepted_run}']")
            assert "accepted (score 0.90)" in run and states.record_id[:16] in run
            funnel = page.locator(f"#funnel table[data-repository='{REPOSITORY}']")
            counts = [cell.inner_text() for cell in funnel.locator("[data-count=chains]").all()]
            assert counts == ["6", "5", "3", "2", "1", "1"]
            assert page.inner_text("#funnel [data-figure=funnel_acceptance]") == "33%"
            screenshot(page, "dashboard-states.png")
        finally:
            browser.close()
