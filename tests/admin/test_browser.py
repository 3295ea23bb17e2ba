"""The dashboard in headless Chromium: a breaker trips, the page shows it, an operator closes it."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import ROOT, Server
from tests.services import require_binary

from .servers import PASSWORD, USERNAME, servers, shared_env

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ARTIFACTS = ROOT / "test-artifacts"
BREAKER = "browser-demo"
LIMITED_RULE = "browser-burst"
CONFIG = {
    "BREAKERS": {BREAKER: {"failure_threshold": 3, "open_for": "60s", "min_calls": 100}},
    "LIMITS": [{"name": LIMITED_RULE, "path": "/hello/", "key": "ip", "rate": "1/m"}],
}
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    tmp = tmp_path_factory.mktemp("browser")
    with servers(CONFIG, tmp, count=1) as (started,):
        yield started, Path(shared_env(tmp)["RESILIENCE_TEST_SQLITE"])


@pytest.fixture
def driver() -> Iterator[Any]:
    chromedriver = require_binary("chromedriver")
    chromium = require_binary("chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="resilience-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1000"]:
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(condition: Any, timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


CARD = f'[data-breaker="{BREAKER}"]'


def _card_state(browser: Any) -> str | None:
    # Read in one script: the page redraws the cards every poll, so an element
    # found by one WebDriver call can be gone by the next.
    state: str | None = browser.execute_script(
        f"const c = document.querySelector('{CARD}'); return c ? c.dataset.state : null;"
    )
    return state


def _card_text(browser: Any) -> str:
    text: str = browser.execute_script(f"return document.querySelector('{CARD}').innerText;")
    return text


def _click(browser: Any, selector: str) -> None:
    """Click like a user; find the element again if a redraw replaced it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(10):
        try:
            browser.find_element(By.CSS_SELECTOR, selector).click()
            return
        except StaleElementReferenceException:
            continue
    pytest.fail(f"{selector} kept being redrawn under the click")


def _shot(browser: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    browser.save_screenshot(str(path))
    return path


def login(browser: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(url + "/admin/login/?next=/admin/")
    _wait(lambda: browser.find_elements(By.ID, "id_username"), what="the login form")
    browser.find_element(By.ID, "id_username").send_keys(USERNAME)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    _wait(lambda: "/admin/login/" not in browser.current_url, what="the login")


# First in the module on purpose: the server has never served the dashboard, as
# when an operator opens it for the first time in the middle of an incident.
def test_first_open_shows_the_rejections_of_the_last_minute_at_once(
    server: tuple[Server, Path], driver: Any
) -> None:
    url = server[0].url
    statuses = [httpx.get(url + "/hello/").status_code for _ in range(13)]
    assert statuses.count(429) == 12, statuses  # 1/m: the first passes, twelve are refused
    login(driver, url)
    driver.get(url + "/admin/resilience_django/breakerdashboard/")
    read_rows = (
        "return Array.from(document.querySelectorAll('#rd-rejections tr'))"
        ".map((tr) => Array.from(tr.cells).map((td) => td.textContent));"
    )
    # The first render (the page's own state, before any poll) already has the figures.
    rows = _wait(lambda: driver.execute_script(read_rows), what="the rejections table")
    assert [LIMITED_RULE, "rate_limited", "12", "12"] in rows, rows
    window = driver.execute_script("return document.getElementById('rd-window').textContent;")
    assert "60 s" in window
    _shot(driver, "dashboard-first-open.png")


def test_breaker_trips_shows_open_without_reload_and_an_operator_force_closes_it(
    server: tuple[Server, Path], driver: Any
) -> None:
    from selenium.webdriver.common.by import By

    server, database = server

    fail_url = f"{server.url}/admin-test/fail/{BREAKER}/"
    assert httpx.get(fail_url).status_code == 502  # the breaker exists now, still closed
    login(driver, server.url)
    driver.get(server.url + "/admin/")
    driver.find_element(By.LINK_TEXT, "Breaker dashboard").click()
    _wait(lambda: _card_state(driver) == "closed", what="the closed breaker on the dashboard")
    driver.execute_script("window.__notReloaded = true;")

    statuses = [httpx.get(fail_url).status_code for _ in range(4)]
    assert statuses[-1] == 503, statuses  # open: refused without calling the dependency

    _wait(lambda: _card_state(driver) == "open", what="the dashboard to show the breaker open")
    assert driver.execute_script("return window.__notReloaded === true;")
    assert "half-open in" in _card_text(driver)
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".rd-spark-line"), what="a sparkline")
    _shot(driver, "dashboard-open.png")

    _click(driver, f'{CARD} button[data-action="force_close"]')
    dialog = driver.find_element(By.ID, "rd-confirm")
    _wait(dialog.is_displayed, what="the confirmation dialog")
    assert BREAKER in dialog.text
    driver.find_element(By.ID, "rd-confirm-ok").click()

    _wait(lambda: _card_state(driver) == "closed", what="the dashboard to show it closed")
    assert driver.execute_script("return window.__notReloaded === true;")
    assert httpx.get(fail_url).status_code == 502  # calls reach the dependency again
    _shot(driver, "dashboard-closed.png")

    with sqlite3.connect(database) as db:
        history = [row[0] for row in db.execute("SELECT change_message FROM django_admin_log")]
    assert any("Forced closed" in m and BREAKER in m for m in history), history


def test_dashboard_follows_the_admin_theme_and_fits_a_narrow_screen(
    server: tuple[Server, Path], driver: Any
) -> None:
    from selenium.webdriver.common.by import By

    url = server[0].url
    httpx.get(f"{url}/admin-test/fail/{BREAKER}/")  # at least one breaker to draw
    login(driver, url)
    dashboard = url + "/admin/resilience_django/breakerdashboard/"
    card = f'[data-breaker="{BREAKER}"]'
    background = f"return getComputedStyle(document.querySelector('{card}')).backgroundColor;"
    for theme, colour in (("light", "rgb(255, 255, 255)"), ("dark", "rgb(18, 18, 18)")):
        driver.get(dashboard)
        driver.execute_script(f"localStorage.setItem('theme', '{theme}');")
        driver.get(dashboard)
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, card), what="the breaker card")
        assert driver.execute_script(background) == colour  # the admin's --body-bg
    _shot(driver, "dashboard-dark.png")

    driver.set_window_size(390, 844)
    driver.get(dashboard)
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, card), what="the breaker card")
    fits = driver.execute_script(
        f"const r = document.querySelector('{card}').getBoundingClientRect();"
        "return r.left >= 0 && r.right <= document.documentElement.clientWidth;"
    )
    assert fits, "the breaker card overflows a 390 px wide screen"
    _shot(driver, "dashboard-narrow.png")
