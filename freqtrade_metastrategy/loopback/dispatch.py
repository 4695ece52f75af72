"""The HTTP layer: a standard-library threading server on 127.0.0.1 that parses each request,
finds its handler (:mod:`.routes`) and answers JSON.

Errors take Binance's shape ``{"code": ..., "msg": ...}``: an :class:`~.api.ApiError` with its
HTTP status, an :class:`~.account.AccountError` (a rejected order) with 400, an unknown
endpoint with 404 (logged to stderr: that is how missing endpoints are found), a bug in a
handler with 500. Control requests (``/_control/``) carry a JSON body and are answered to
127.0.0.1 clients only; other requests' form bodies (ccxt's private POSTs) join the query
parameters.
This module must not import freqtrade.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .account import AccountError
from .api import ApiError, LoopbackApi, Request
from .routes import find_handler, is_control

HOST = "127.0.0.1"


class ServedExchange(Protocol):
    """What the HTTP layer needs of the exchange it serves (:class:`~.server.LoopbackExchange`)."""

    @property
    def api(self) -> LoopbackApi: ...

    @property
    def log_requests(self) -> bool: ...

    def record(self, req: Request) -> None: ...

    def log(self, message: str) -> None: ...


class LoopbackHTTPServer(ThreadingHTTPServer):
    """The threading HTTP server of one exchange (one daemon thread per request)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], exchange: ServedExchange) -> None:
        self.exchange = exchange
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: LoopbackHTTPServer
    server_version = "loopback-binance/1.0"
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        exchange = self.server.exchange
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        handler = find_handler(method, parts.path)
        body: Any = None
        try:
            if is_control(parts.path):
                if self.client_address[0] != HOST:
                    raise ApiError(403, -1100, "Control endpoints are loopback only.")
                body = self._json_body()
            else:
                params |= self._form_body()  # ccxt sends private POST parameters in the body
            req = Request(method, parts.path, params, body)
            exchange.record(req)
            if handler is None:
                exchange.log(f"unknown endpoint: {method} {self.path}")
                raise ApiError(404, -1100, f"Unknown endpoint {method} {parts.path} (loopback).")
            body = handler(exchange.api, req)
            status = 200
        except ApiError as err:
            status, body = err.status, {"code": err.code, "msg": err.msg}
        except AccountError as err:
            status, body = 400, {"code": err.code, "msg": err.msg}
        except Exception as err:  # a bug in the mock must not kill the client's request
            exchange.log(f"error serving {method} {self.path}: {err!r}")
            status, body = 500, {"code": -1000, "msg": f"loopback internal error: {err}"}
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _json_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, -1100, "Body must be JSON.") from None

    def _form_body(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return {}
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.exchange.log_requests:
            self.server.exchange.log(format % args)
