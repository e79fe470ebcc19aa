"""The dashboard's guard: a per-start token on every request, a size limit on every body.

1. `new_token` draws 32 random bytes (``secrets``) when the server starts; the URL it prints
   carries it (``/?token=...``).
2. A GET that brings the token in its query string is answered with a redirect to the same
   address without it and a cookie (HttpOnly, SameSite=Strict, named after the token's hash so
   two dashboards on one machine do not overwrite each other's): the token leaves the address
   bar and the history. Later pages and static files send the cookie.
3. Every request without a valid token gets 401 (a page for a browser, JSON for the API). A
   request that changes the store (POST) must also carry the token in the
   ``X-Interplab-Token`` header, which a page of another site cannot set: the cookie alone does
   not authorise a write.
4. A body over `MAX_BODY_BYTES` is refused with 413 before it is read (by its
   Content-Length), and `read_body` stops reading a streamed body at the limit.
5. Every response says ``nosniff``, denies framing, and carries a content security policy that
   runs only the dashboard's own scripts.
"""

from __future__ import annotations

import hashlib
import html
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from interplab.dashboard.sources import DashboardError

MAX_BODY_BYTES = 256 * 1024
"""The largest request body the dashboard reads (notes, hypotheses and findings are text)."""

HEADER = "x-interplab-token"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_token() -> str:
    """Returns a fresh random token (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def cookie_name(token: str) -> str:
    """Returns the cookie that carries this token (named by its hash, never the token)."""
    return "interplab_" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _security_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", CSP.encode()),
        (b"cache-control", b"no-store"),
    ]


async def _respond(
    send: Send,
    status: int,
    body: str,
    content_type: str,
    extra: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
) -> None:
    data = body.encode()
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(data)).encode()),
        *_security_headers(),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def refusal_page(status: int, title: str, text: str) -> str:
    """Returns a small standalone HTML page that explains a refusal."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title></head><body style='font-family:sans-serif;margin:3em'>"
        f"<h1>{status}: {html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )


class Guard:
    """ASGI middleware: the token check, the CSRF header on writes, the body limit, headers."""

    def __init__(self, app: ASGIApp, token: str, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.token, self.max_body = app, token, max_body
        self.cookie = cookie_name(token)

    def _valid(self, value: str | None) -> bool:
        return value is not None and secrets.compare_digest(value.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = next((v for k, v in query if k == "token"), None)
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            cookies = SimpleCookie()
        jar = cookies.get(self.cookie)
        from_cookie = jar.value if jar is not None else None
        from_header = headers.get(HEADER)
        is_api = scope["path"].startswith("/api/")
        method = scope["method"]

        if method == "GET" and given is not None and self._valid(given):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            target = scope["path"] + ("?" + rest if rest else "")
            cookie = f"{self.cookie}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            await _respond(
                send,
                303,
                "",
                "text/plain",
                [(b"location", target.encode()), (b"set-cookie", cookie.encode())],
            )
            return
        authorised = self._valid(from_header) or self._valid(from_cookie) or self._valid(given)
        if not authorised:
            why = "this dashboard needs the token printed when it started (open the URL it printed)"
            await self._refuse(send, 401, "token required", why, is_api or method != "GET")
            return
        if method not in ("GET", "HEAD") and not self._valid(from_header):
            why = "a change to the project must carry the token in the X-Interplab-Token header"
            await self._refuse(send, 403, "token header required", why, True)
            return
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await self._refuse(send, 400, "bad request", "Content-Length is not a number", True)
                return
            if int(length) > self.max_body:
                why = f"the request body is {int(length)} bytes; the dashboard reads at most {self.max_body}"
                await self._refuse(send, 413, "request body too large", why, True)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(h for h in _security_headers() if h[0] not in names),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(self, send: Send, status: int, title: str, why: str, as_json: bool) -> None:
        if as_json:
            await _respond(send, status, json.dumps({"error": why}), "application/json")
        else:
            await _respond(
                send, status, refusal_page(status, title, why), "text/html; charset=utf-8"
            )


async def read_body(receive_stream: Any, limit: int = MAX_BODY_BYTES) -> bytes:
    """Returns a request body read from Starlette's ``request.stream()``, refusing it with 413
    as soon as it passes ``limit`` bytes (a chunked body has no Content-Length to check)."""
    chunks, size = [], 0
    async for chunk in receive_stream:
        size += len(chunk)
        if size > limit:
            raise DashboardError(f"the request body passed the limit of {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = [
    "CSP",
    "HEADER",
    "MAX_BODY_BYTES",
    "Guard",
    "cookie_name",
    "new_token",
    "read_body",
    "refusal_page",
]
