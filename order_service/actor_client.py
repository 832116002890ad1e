"""Call OrderActor through a Dapr sidecar's actor API, and map the actor's refusals.

Used by the gRPC API (order-service to its own sidecar) and by tools (CLI, demo, tests).
An error raised by the actor comes back as HTTP 200 with `X-Daprerrorresponseheader` set and
the exception's text, which carries the gRPC status name the actor chose (`OrderError`).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

from apphost.observability import current_traceparent

ACTOR_TYPE = "OrderActor"
_ORDER_ERROR = re.compile(
    r"(INVALID_ARGUMENT|ALREADY_EXISTS|NOT_FOUND|FAILED_PRECONDITION|UNAVAILABLE): (.*?)['\"]?\)?$")


class ActorCallError(Exception):
    """The call failed. `code` is the gRPC status name the actor gave (DESIGN.md's errors),
    or UNAVAILABLE when it never got an answer from the actor."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_body(cls, body: str) -> "ActorCallError":
        try:
            text = json.loads(body).get("message", body)
        except (ValueError, AttributeError):
            text = body
        match = _ORDER_ERROR.search(text)
        return cls(match.group(1), match.group(2)) if match else cls("UNAVAILABLE", text)


class ActorClient:
    def __init__(self, http_port: int, host: str = "127.0.0.1", api_token: str | None = None,
                 timeout: float = 30.0):
        self._base = f"http://{host}:{http_port}/v1.0/actors/{ACTOR_TYPE}"
        self._token = api_token
        self._timeout = timeout

    def call(self, order_id: str, method: str, payload: object = None):
        request = urllib.request.Request(f"{self._base}/{urllib.parse.quote(order_id, safe='')}/method/{method}",
                                         data=json.dumps(payload).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("dapr-api-token", self._token)
        traceparent = current_traceparent()
        if traceparent:  # daprd's actor span, and the actor's own, join the caller's trace
            request.add_header("traceparent", traceparent)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body = response.read()
                if response.headers.get("X-Daprerrorresponseheader"):
                    raise ActorCallError.from_body(body.decode(errors="replace"))
        except urllib.error.HTTPError as error:
            raise ActorCallError("UNAVAILABLE", f"HTTP {error.code}: {error.read().decode(errors='replace')}") from None
        except (urllib.error.URLError, OSError) as error:
            raise ActorCallError("UNAVAILABLE", str(error)) from None
        return json.loads(body) if body else None
