"""The service's gate (ASGI middleware): the token, then the load bound, before any body is read.

A request without a valid token gets 401 at once. A prediction beyond ``max_in_flight`` gets 503
with ``Retry-After`` at once instead of waiting in an unbounded queue, and one still running after
``timeout_s`` is answered 503 too; a till then retries or asks for ID, it never hangs.
"""

from __future__ import annotations

import json

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agecheck.config import ServeConfig
from agecheck.service.access import token_matches

#: Paths anyone may call: the load balancer's health check.
OPEN_PATHS = frozenset({"/health"})
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json"})
#: Where the app serves the docs' own script and style (a browser sends no token for them): under
#: the rule of ``/docs``.
DOCS_ASSETS_URL = "/docs/assets"
#: Paths that run the model: bounded in number and time.
BOUNDED_PATHS = frozenset({"/predict"})
TOKEN_HINT = "send the API token as 'Authorization: Bearer <token>' or 'X-API-Key: <token>'"


def presented_token(scope: Scope) -> bytes | None:
    """The token in the ``Authorization: Bearer`` or ``X-API-Key`` header, if any."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            kind, _, token = value.partition(b" ")
            if kind.lower() == b"bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value.strip():
            return value.strip()
    return None


async def reply(send: Send, status: int, error: str, detail: str, headers: dict[str, str]) -> None:
    """A JSON error ``{"error", "detail"}`` like the app's own, sent without touching the body."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    fields = {"content-type": "application/json", "content-length": str(len(body)), **headers}
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(key.encode(), value.encode()) for key, value in fields.items()],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Gate:
    """Authentication (when ``tokens`` are set) and the in-flight and time bounds of predictions."""

    def __init__(self, app: ASGIApp, tokens: tuple[bytes, ...], serve: ServeConfig) -> None:
        self.app, self.tokens, self.serve = app, tokens, serve
        self.open_paths = OPEN_PATHS | (DOCS_PATHS if serve.open_docs else frozenset())
        self.open_prefixes = (f"{DOCS_ASSETS_URL}/",) if serve.open_docs else ()
        self.in_flight = 0
        self.retry = {"retry-after": str(serve.retry_after_s)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.tokens:  # the service has none: never let one in
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if self.tokens and path not in self.open_paths and not path.startswith(self.open_prefixes):
            token = presented_token(scope)
            if token is None or not token_matches(token, self.tokens):
                wrong = "a wrong API token" if token else "no API token"
                await reply(
                    send, 401, "unauthorized", f"{wrong}: {TOKEN_HINT}", {"www-authenticate": "Bearer"}
                )
                return
        if path not in BOUNDED_PATHS:
            await self.app(scope, receive, send)
            return
        limit = self.serve.max_in_flight
        if self.in_flight >= limit:
            detail = f"{limit} predictions in flight, the most this service takes at once"
            await reply(send, 503, "busy", f"{detail}; retry after {self.serve.retry_after_s} s", self.retry)
            return
        self.in_flight += 1
        try:
            await self._bounded(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; answer 503 if it has not started answering within ``timeout_s``."""
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        with anyio.move_on_after(self.serve.timeout_s) as deadline:
            await self.app(scope, receive, tracked)
        if deadline.cancelled_caught and not started:
            detail = f"the prediction took longer than {self.serve.timeout_s:g} s"
            await reply(send, 503, "timeout", detail, self.retry)
