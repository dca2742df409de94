"""The security headers every response carries: no page of ours in another site's frame
(clickjacking), nothing run that our own server did not send, no type sniffing, and no
run's address in a Referer sent elsewhere.

A header a route set itself stays as it is: an artifact download's
``Content-Security-Policy: sandbox`` is stricter than the pages' policy.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Scripts, styles, fonts and data from our own origin only (plotly.js is vendored), never
# an inline script; 'unsafe-eval' because plotly's parcoords (Compare) compiles its WebGL
# drawing with new Function (regl): without it the figure stays blank. Inline styles, because
# plotly.js writes <style> rules and style attributes as it draws; images also as data: and
# blob: (plotly's icons and PNG/SVG export); never a plugin, a <base>, a form posted
# elsewhere or a frame around us.
POLICY = ("default-src 'self'; script-src 'self' 'unsafe-eval'; "
          "style-src 'self' 'unsafe-inline'; "
          "img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; "
          "form-action 'self'; frame-ancestors 'none'")

HEADERS = (
    (b"content-security-policy", POLICY.encode()),
    (b"x-frame-options", b"DENY"),          # frame-ancestors for browsers without CSP 2
    (b"x-content-type-options", b"nosniff"),  # an upload renders as its label, not a guess
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every HTTP response that lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                message["headers"] = headers + [h for h in HEADERS if h[0] not in present]
            await send(message)

        await self.app(scope, receive, with_headers)
