"""The README's tour: screenshots of the demo, taken from the running product.

    make tour        # = .venv/bin/python -m config.launcher exec -- .venv/bin/python docs/tour.py

Loads the demo (as `make run` does, idempotent), starts the web server on a free port, signs
in as the demo admin in headless Chromium and saves docs/tour/*.png. Run it after a change
to the pages so the README shows them as they are.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.launcher import load_demo  # noqa: E402

OUT = ROOT / "docs" / "tour"
PASSWORD = "demo-pass-2026"
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 1180, "height": 820}  # landscape, mounted at the counter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the web server did not answer at {url} within {timeout:.0f} s") from None
            time.sleep(0.5)


def shoot(page, name: str) -> None:
    page.wait_for_load_state("networkidle")
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"  {path.relative_to(ROOT)}")


def take(base: str) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        desktop = browser.new_context(viewport=DESKTOP)
        page = desktop.new_page()
        page.goto(f"{base}/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        shoot(page, "1-dashboard")

        page.goto(f"{base}/personas/?q=")
        page.locator("table tbody tr a").first.click()
        page.wait_for_url("**/personas/*/")
        shoot(page, "2-persona-card")

        page.goto(f"{base}/audiences/")
        page.locator("table tbody tr a").first.click()
        page.wait_for_url("**/audiences/*/")
        shoot(page, "3-audience-builder")

        page.goto(f"{base}/analytics/")
        shoot(page, "5-analytics")

        page.goto(f"{base}/settings/integrations/")
        shoot(page, "6-integrations")

        page.goto(f"{base}/campaigns/")
        page.get_by_role("link", name="Double points weekend").click()
        page.wait_for_url("**/campaigns/*/")
        page.wait_for_load_state("networkidle")
        page.get_by_role("heading", name="Did it make a difference?").evaluate(
            "heading => window.scrollTo(0, heading.getBoundingClientRect().top + window.scrollY - 90)")
        shoot(page, "7-campaign-report")

        # The queue as the tablet at the counter shows it.
        tablet = browser.new_context(viewport=TABLET, storage_state=desktop.storage_state())
        counter = tablet.new_page()
        counter.goto(f"{base}/queue/")
        counter.locator("main a[href*='/queue/']").first.click()
        counter.wait_for_url("**/queue/*/**")
        counter.get_by_role("link", name="Counter mode").click()
        counter.locator("[data-testid=queue-name]").first.click()
        counter.locator("[data-testid=profile-name]").wait_for()
        shoot(counter, "4-queue-tablet")
        counter.get_by_role("link", name="Leave counter mode").click()
        browser.close()


def main() -> int:
    if "DATABASE_URL" not in os.environ:
        raise SystemExit("run through the launcher: make tour")
    env = dict(os.environ, DEBUG="1")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    manage = str(ROOT / "manage.py")
    subprocess.run([sys.executable, manage, "migrate", "--no-input", "-v", "0"], env=env, check=True)
    load_demo(env, base)
    OUT.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, manage, "runserver", "--noreload", f"127.0.0.1:{port}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(base)
        print("Tour screenshots:")
        take(base)
    finally:
        server.terminate()
        server.wait(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
