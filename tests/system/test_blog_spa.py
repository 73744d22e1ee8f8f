"""The blog SPA in Debian's Chromium, through the load balancer of the real suite: sign up, write, edit, delete."""

import uuid

from tests.support.browser import screenshot

HOSTILE_TITLE = '<img src=x onerror="window.__xss=1">Hi'


async def test_a_reader_signs_up_writes_edits_and_deletes_a_post(suite, browser_page):
    page, log = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    username = f"spa{uuid.uuid4().hex[:8]}"

    await page.goto(suite.url("load-balancer") + "/blog/#/signup")
    await page.fill("#f-username", username)
    await page.fill("#f-email", f"{username}@example.com")
    await page.fill("#f-password", "a long enough password")
    await page.click("button[type=submit]")
    await page.wait_for_selector(f"#nav >> text={username}")

    await page.click("text=Write")
    await page.fill("#f-title", HOSTILE_TITLE)
    await page.fill("#f-content", "Rendered as text, <script>window.__xss=2</script> included.")
    await page.click("button[type=submit]")
    heading = page.locator("article.post h1")
    await heading.wait_for()
    assert await heading.text_content() == HOSTILE_TITLE
    assert await page.locator("article.post img").count() == 0
    assert await page.evaluate("window.__xss") is None

    await page.click("text=Edit")
    await page.fill("#f-title", "Edited in the browser")
    await page.click("button[type=submit]")
    await page.wait_for_selector("article.post h1 >> text=Edited in the browser")
    await screenshot(page, "blog-post")

    await page.click("text=Delete")
    await page.wait_for_selector("div.pager")
    assert await page.locator("text=Edited in the browser").count() == 0
    assert log.errors == []


async def test_a_wrong_password_is_said_on_the_form(suite, browser_page):
    page, _ = browser_page
    await page.goto(suite.url("load-balancer") + "/blog/#/login")
    await page.fill("#f-username", "nobody-here")
    await page.fill("#f-password", "wrong password")
    await page.click("button[type=submit]")
    alert = page.locator("form [role=alert]")
    await alert.wait_for()
    await page.wait_for_function("() => document.querySelector('form [role=alert]').textContent.length > 0")
    assert "invalid" in (await alert.text_content()).lower()


async def test_an_expired_access_token_is_renewed_and_log_out_ends_the_session(suite, browser_page):
    page, log = browser_page
    username = f"spa{uuid.uuid4().hex[:8]}"
    await page.goto(suite.url("load-balancer") + "/blog/#/signup")
    await page.fill("#f-username", username)
    await page.fill("#f-email", f"{username}@example.com")
    await page.fill("#f-password", "a long enough password")
    await page.click("button[type=submit]")
    await page.wait_for_selector(f"#nav >> text={username}")
    first_refresh = await page.evaluate("sessionStorage.getItem('refresh_token')")
    assert first_refresh

    # As if the 15-minute access token had run out: the next write gets 401, renews, and goes through.
    await page.evaluate("sessionStorage.setItem('token', 'expired.access.token')")
    await page.click("text=Write")
    await page.fill("#f-title", "Written after a renewal")
    await page.fill("#f-content", "The SPA renewed its access token with the refresh token.")
    await page.click("button[type=submit]")
    await page.wait_for_selector("article.post h1 >> text=Written after a renewal")
    renewed = await page.evaluate("sessionStorage.getItem('refresh_token')")
    assert renewed and renewed != first_refresh

    await page.click("text=Log out")
    await page.wait_for_selector("#nav >> text=Log in")
    assert await page.evaluate("sessionStorage.getItem('refresh_token')") is None
    refused = await page.evaluate(
        """async (token) => (await fetch('/api/auth/refresh', {method: 'POST',
             headers: {'Content-Type': 'application/json'}, body: JSON.stringify({refresh_token: token})})).status""",
        renewed,
    )
    assert refused == 401
    assert [e for e in log.errors if "401" not in e] == []
