"""The API's docs page in a real browser: headless Chromium opens the gateway's /docs.

What a reader of the docs sees and does: every operation of the merged document listed,
the Authorize dialog taking a token, one call tried out from the page. Under the page's
Content-Security-Policy nothing is refused, and nothing is loaded from anywhere but the
suite itself.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from bench.suite import Suite

pytestmark = pytest.mark.e2e

METHODS = ("get", "put", "post", "delete", "patch")
# Headless, and quiet: on a machine without a network, Chromium's own background calls
# (updates, sync, field trials) make it hang, so they are all off.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2000",
)
# Injected before any of the page's scripts (DevTools scripts are not subject to the page's
# policy): every violation the policy reports is kept for the test to read.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""
LISTED_OPERATIONS = """
return Array.from(document.querySelectorAll(".opblock")).map((block) => [
  block.querySelector(".opblock-summary-method").textContent.toLowerCase(),
  block.querySelector(".opblock-summary-path").dataset.path,
]);
"""
WAIT = 30  # seconds: a busy machine parses Swagger UI's 1.5 MB bundle slowly


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Debian's chromium, driven by its chromedriver, with a fresh profile; network logged."""
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS}
        )
        yield driver
    finally:
        driver.quit()


def network_events(driver: WebDriver) -> list[dict[str, Any]]:
    """The DevTools Network events of web pages the browser logged since the last call.

    Chromium's own pages (the blank tab it starts with, chrome://...) are left out: they
    load the browser's built-in files, and nothing of them is the docs page's doing.
    """
    events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    return [
        event
        for event in events
        if event["method"].startswith("Network.")
        and not event["params"].get("documentURL", "").startswith("chrome://")
    ]


def operations_of(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(method, path) of every operation of an OpenAPI document."""
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    }


def click(driver: WebDriver, selector: str) -> None:
    """Click the element once it can be clicked."""
    WebDriverWait(driver, WAIT).until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, selector))
    ).click()


def test_the_docs_page_lists_every_operation_and_runs_a_call_with_a_token(
    suite: Suite, register: Callable[[str], Any], browser: WebDriver
) -> None:
    reader = register("Reader")
    token = reader.http.headers["Authorization"].removeprefix("Bearer ")
    document = requests.get(suite.url("gateway", "/openapi.json"), timeout=10).json()
    origin = suite.url("gateway")

    network_events(browser)  # what the browser did before it opened the page
    browser.get(suite.url("gateway", "/docs/"))
    WebDriverWait(browser, WAIT).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(operations_of(document))
    )
    listed = [tuple(operation) for operation in browser.execute_script(LISTED_OPERATIONS)]

    # Authorize: the token goes into every bearer scheme of the dialog.
    click(browser, ".auth-wrapper .authorize")
    dialog = WebDriverWait(browser, WAIT).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux"))
    )
    for field in dialog.find_elements(By.CSS_SELECTOR, ".auth-container input"):
        field.send_keys(token)
    for button in dialog.find_elements(By.CSS_SELECTOR, "button.modal-btn.authorize"):
        button.click()
    click(browser, ".modal-ux .btn-done")

    # Try out GET /api/v1/auth/me and run it.
    me = "#operations-auth-get_me"
    click(browser, f"{me} .opblock-summary-control")
    click(browser, f"{me} .try-out__btn")
    click(browser, f"{me} .execute")
    status = WebDriverWait(browser, WAIT).until(
        expected_conditions.visibility_of_element_located(
            (By.CSS_SELECTOR, f"{me} .live-responses-table tbody .response-col_status")
        )
    )
    shown_status = status.text.strip()
    shown_body = browser.find_element(
        By.CSS_SELECTOR, f"{me} .live-responses-table tbody .response-col_description"
    ).text

    events = network_events(browser)
    requested = [
        e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"
    ]
    responses = {
        e["params"]["response"]["url"]: e["params"]["response"]
        for e in events
        if e["method"] == "Network.responseReceived"
    }
    violations = browser.execute_script("return window.cspViolations;")
    page_headers = {k.lower(): v for k, v in responses[f"{origin}/docs/"]["headers"].items()}

    assert sorted(listed) == sorted(operations_of(document))
    assert shown_status == "200"
    assert reader.email in shown_body
    assert responses[f"{origin}/api/v1/auth/me"]["status"] == 200
    # Everything the page loaded came from the suite (icons are data: URIs in the CSS).
    assert requested, "the browser logged no request"
    outside = [url for url in requested if not url.startswith((f"{origin}/", "data:"))]
    assert outside == [], outside
    assert violations == []
    assert "script-src 'self'" in page_headers["content-security-policy"]
