"""Security headers for the suite's browser pages (the dashboard, the blog SPA), one policy for both.

The Content-Security-Policy allows scripts, styles, images and connections (fetch, WebSocket) from the page's own
origin only: no inline script or event handler, no eval, no plugin, no other site. The pages are built for it (their
scripts are files; they set styles through the DOM, never in markup). `frame-ancestors 'none'` and X-Frame-Options
keep the pages out of other sites' frames (clickjacking), nosniff makes a browser take each file as the type the
server says, and no Referer leaves the suite.
"""

from collections.abc import MutableMapping

from aiohttp import web

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # The pages' empty favicon is a data: URL.
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
BROWSER_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def add_browser_security_headers(headers: MutableMapping[str, str]) -> None:
    """The policy's headers on an answer (one it already carries is kept)."""
    for name, value in BROWSER_SECURITY_HEADERS.items():
        headers.setdefault(name, value)


async def _on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    add_browser_security_headers(response.headers)


def secure_browser_pages(app: web.Application) -> None:
    """Every answer of an aiohttp app that serves browser pages carries the policy's headers."""
    app.on_response_prepare.append(_on_response_prepare)
