"""Take the docs' dashboard screenshots: ``python -m tests.admin.screenshot`` (about 45 s).

A real server, a real browser, and traffic to three dependencies: one healthy,
one going bad gradually (it trips on its error rate, probes, re-opens), one
failing hard.  Writes docs/img/breaker-dashboard{,-dark}.png.  The changelist
images (``changelist_screenshots``) are drawn by the browser test itself.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.server import ROOT

from .servers import servers

CONFIG = {
    "BREAKERS": {
        "inventory": {"failure_threshold": None, "error_rate": 0.5, "min_calls": 10,
                      "window": "10s"},
        "pricing": {"failure_threshold": None, "error_rate": 0.5, "min_calls": 10,
                    "window": "10s", "open_for": "4s", "half_open_calls": 4},
        "risk": {"failure_threshold": 5, "open_for": "60s"},
    },
    "LIMITS": [{"name": "orders-per-ip", "path": "/api/orders", "rate": "100/m"}],
    "DEADLINE": {"DEFAULT": "30s", "ROUTES": {"/api/orders": "800ms"}},
}  # fmt: skip
SECONDS = 40.0


def _traffic(url: str, stop: threading.Event) -> None:
    start = time.monotonic()
    with httpx.Client(base_url=url, timeout=5) as client:
        while not stop.is_set():
            t = time.monotonic() - start
            client.get("/admin-test/flaky/inventory/", params={"p": 0.03})
            # pricing degrades over the run, from 5% to 80% failures
            client.get("/admin-test/flaky/pricing/", params={"p": min(0.05 + t / 45, 0.8)})
            client.get("/admin-test/flaky/risk/", params={"p": 0.02 if t < SECONDS / 2 else 1.0})
            time.sleep(0.05)


# The changelist images: drawn by tests/admin/test_browser_changelist.py on every
# browser run, so docs/admin.md shows the admin as it is.
CHANGELIST = "/admin/resilience_django/limitrule/"


def changelist_screenshots(driver: Any, url: str, out: Path) -> list[Path]:
    """Save the limit rules changelist (admin rows above, settings rules below) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    # Wide and tall enough for every column and the settings table under them,
    # with the admin's navigation sidebar folded away.
    driver.set_window_size(1400, 1150)
    driver.get(url + CHANGELIST)
    driver.execute_script(
        "localStorage.setItem('theme', 'light');"
        "localStorage.setItem('django.admin.navSidebarIsOpen', 'false');"
    )
    driver.get(url + CHANGELIST)
    path = out / "limit-rules.png"
    driver.save_screenshot(str(path))
    return [path]


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from .test_browser import FLAGS, login

    out = ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="resilience-shot-"))
    with servers(CONFIG, tmp, count=1) as (server,):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in [*FLAGS, f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,1250"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        stop = threading.Event()
        worker = threading.Thread(target=_traffic, args=(server.url, stop), daemon=True)
        try:
            login(driver, server.url)
            driver.get(server.url + "/admin/resilience_django/breakerdashboard/")
            driver.execute_script("localStorage.setItem('theme', 'light');")
            worker.start()
            time.sleep(SECONDS)
            driver.save_screenshot(str(out / "breaker-dashboard.png"))
            driver.execute_script(
                "localStorage.setItem('theme', 'dark');"
                "document.documentElement.dataset.theme = 'dark';"
            )
            time.sleep(0.5)
            driver.save_screenshot(str(out / "breaker-dashboard-dark.png"))
        finally:
            stop.set()
            driver.quit()
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out}/breaker-dashboard.png and breaker-dashboard-dark.png")


if __name__ == "__main__":
    main()
