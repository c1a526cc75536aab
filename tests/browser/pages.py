"""Steps every browser test takes."""

from playwright.sync_api import expect

from tests.factories import PASSWORD


def log_in(page, live_server, username):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    # Signed in: the page after the login form has the main navigation (folded behind the
    # Menu button under 900 px, so present rather than visible).
    expect(page.locator('nav[aria-label="Main"]')).to_be_attached()
