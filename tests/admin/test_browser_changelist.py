"""The limit rules changelist in headless Chromium; draws docs/img/limit-rules.png as it goes.

The docs' changelist image is this test's screenshot, so it never falls behind
the admin (``python -m tests.admin.screenshot`` draws the dashboard's).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import ROOT, Server

from .screenshot import CHANGELIST, changelist_screenshots
from .servers import servers
from .test_browser import _wait, driver, login  # noqa: F401 - driver is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CONFIG = {
    "LIMITS": [
        {"name": "orders-per-ip", "path": "/api/orders", "methods": ["POST"], "rate": "100/60s"},
        {"name": "login-per-ip", "path": "/accounts/login/", "rate": "5/m",
         "algorithm": "gcra"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with servers(CONFIG, tmp_path_factory.mktemp("changelist"), count=1) as (started,):
        yield started


def _add(browser: Any, url: str, name: str, rate: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(url + CHANGELIST + "add/")
    _wait(lambda: browser.find_elements(By.ID, "id_name"), what="the add form")
    browser.find_element(By.ID, "id_name").send_keys(name)
    browser.find_element(By.ID, "id_path").send_keys("/api/partners/")
    browser.find_element(By.ID, "id_key").clear()
    browser.find_element(By.ID, "id_key").send_keys("header:X-Api-Key")
    browser.find_element(By.ID, "id_rate").send_keys(rate)
    browser.find_element(By.CSS_SELECTOR, "input[name=_save]").click()


def test_changelist_shows_admin_and_settings_rates_alike_and_draws_the_docs_image(
    server: Server,
    driver: Any,  # noqa: F811 - the fixture imported above
) -> None:
    from selenium.webdriver.common.by import By

    login(driver, server.url)
    _add(driver, server.url, "orders-per-ip", "5/m")
    error = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".errorlist"), what="the error")
    assert "already define" in error[0].text  # the settings' name is refused

    _add(driver, server.url, "partners-per-key", "1000/minute")
    _wait(lambda: driver.current_url.endswith(CHANGELIST), what="the changelist")
    page = driver.find_element(By.TAG_NAME, "body").text
    assert "1000/m" in page and "100/m" in page  # the admin row and the settings rule
    assert "/60s" not in page and "/minute" not in page
    headers = [
        h.text.strip().lower()
        for h in driver.find_elements(By.CSS_SELECTOR, "#result_list thead th")
    ]
    assert [h for h in headers if h] == [
        "name", "route", "key", "rate", "mode", "enabled", "in force", "updated at",
    ]  # fmt: skip

    (image,) = changelist_screenshots(driver, server.url, ROOT / "docs" / "img")
    assert image.stat().st_size > 10_000
    assert Path(image).name == "limit-rules.png"
