"""Live mode's control endpoints (``/_control/...``): test hooks that move the live price, shape
the order book and set the private account's fees and balances.

Route handlers ``(api, request) -> JSON`` (see :data:`.routes.CONTROL_ROUTES`), answered to
127.0.0.1 clients only (:mod:`.dispatch`) and with HTTP 400 outside live mode. A request's
``symbol`` may be ``BTCUSDT``, ``BTC/USDT`` or ``BTC/USDT:USDT`` (:func:`symbol_id`: one price
per base asset moves both markets):

- ``POST /_control/price`` with ``{"symbol": "BTCUSDT", "price": 43000}`` or ``{"symbol": ...,
  "path": [p1, p2, ...], "step_seconds": s}``; answers the symbol's state;
- ``POST /_control/prices`` with ``{"prices": {"BTCUSDT": 41000, "ETH/USDT": 2100}}``: every
  symbol moves at once (one lock acquisition; multi-symbol tickers read under the same lock, so
  no poll sees some moved and others not); answers ``{"symbols": {symbol: state}}``;
- ``POST /_control/book`` with ``{"symbol": "BTCUSDT", "depth_scale": 0.01, "spread_bps": 25}``
  (both optional, omitted = default; the call replaces the whole shape) or ``{"symbol": ...,
  "reset": true}``: the shape of that symbol's order book (``/depth``, ``bookTicker``, 24hr
  bid/ask), kept across price moves; answers the symbol's state;
- ``GET /_control/state``: every symbol's price, in-progress candle, pending path and book shape;
- ``POST /_control/fees`` with ``{"report": false}`` (later fills charge and report no fee: no
  ``commission`` in ``fills`` nor ``myTrades``), ``{"report": true}`` and / or ``{"rate":
  0.001}``; answers ``{"report": ..., "rate": ...}``;
- ``POST /_control/balances`` with ``{"balances": {"USDT": 5000}}``: set free balances;
- ``GET /_control/account``: balances, fee setting, every order and trade of the account.

Prices are snapped to the symbol's tick. Bad requests answer HTTP 400 in Binance's error shape.
This module must not import freqtrade.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .api import ApiError, LoopbackApi, Request
from .live import LiveMarketData
from .markets import JSON
from .rules import MarketRules


def symbol_id(name: str) -> str:
    """Binance's market id of a control request's symbol: ``BTCUSDT``, ``BTC/USDT`` and the
    perpetual ``BTC/USDT:USDT`` all name ``BTCUSDT`` (one live price per base asset).

    >>> [symbol_id(s) for s in ("BTCUSDT", "BTC/USDT", "BTC/USDT:USDT")]
    ['BTCUSDT', 'BTCUSDT', 'BTCUSDT']
    """
    return name.split(":", 1)[0].replace("/", "")


def live_data(api: LoopbackApi) -> LiveMarketData:
    if not isinstance(api.data, LiveMarketData):
        raise ApiError(400, -1100, "Control endpoints need the live mode (--live).")
    return api.data


def control_state(api: LoopbackApi, req: Request) -> JSON:
    return live_data(api).state()


def control_price(api: LoopbackApi, req: Request) -> JSON:
    """``{"symbol": "BTCUSDT" | "BTC/USDT", "price": p}`` or ``{"symbol": ..., "path":
    [p, ...], "step_seconds": s}``; prices are snapped to the symbol's tick."""
    data = live_data(api)
    body = req.body if isinstance(req.body, dict) else {}
    symbol = body.get("symbol") or req.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
    symbol = symbol_id(symbol)
    rules = api.rules(symbol)
    raw = body.get("path") if "path" in body else [body.get("price", req.get("price"))]
    try:
        if not isinstance(raw, list):
            raise TypeError("path must be a list")
        path = [float(p) for p in raw]
        step = float(body.get("step_seconds", 0.0))
        path = [snap_price(rules, p) for p in path]
        data.walk(symbol, path, step)
    except (TypeError, ValueError) as err:
        raise ApiError(400, -1100, f"Bad price control request: {err}") from None
    return data.symbol_state(symbol)


def snap_price(rules: MarketRules, price: float) -> float:
    """A positive price on the symbol's tick grid (at least one tick); others unchanged."""
    return max(rules.tick, rules.round_price(price)) if price > 0 else price


def snapped_prices(api: LoopbackApi, prices: Mapping[str, Any]) -> dict[str, float]:
    """``{"BTCUSDT" | "BTC/USDT": price}`` -> ``{"BTCUSDT": snapped price}``; ApiError 400
    for a bad price (naming ``prices``) or an unknown symbol ("Invalid symbol.")."""
    moves: dict[str, float] = {}
    for name, value in prices.items():
        if not isinstance(name, str) or not name:
            raise ApiError(400, -1100, "Bad prices control request: empty symbol in 'prices'.")
        symbol = symbol_id(name)
        rules = api.rules(symbol)
        price = _number(value)
        if price is None or price <= 0:
            raise ApiError(
                400,
                -1100,
                f"Bad prices control request: 'prices' needs a positive number for {name}, "
                f"got {value!r}.",
            )
        if symbol in moves:
            raise ApiError(
                400, -1100, f"Bad prices control request: 'prices' names {symbol} twice."
            )
        moves[symbol] = snap_price(rules, price)
    return moves


def control_prices(api: LoopbackApi, req: Request) -> JSON:
    """``{"prices": {"BTCUSDT" | "BTC/USDT": p, ...}}``: all symbols move at once (snapped
    to their ticks); answers ``{"symbols": {symbol: state}}`` of the moved symbols."""
    data = live_data(api)
    body = req.body if isinstance(req.body, dict) else {}
    if body.get("prices") is None:
        raise ApiError(
            400,
            -1102,
            "Mandatory parameter 'prices' was not sent, was empty/null, or malformed.",
        )
    _reject_unknown_fields(body, {"prices"}, "prices")
    raw = body["prices"]
    if not isinstance(raw, dict) or not raw:
        raise ApiError(
            400,
            -1100,
            "Bad prices control request: 'prices' must be a non-empty object "
            '{"BTCUSDT": price, ...}.',
        )
    moves = snapped_prices(api, raw)
    with data.locked():
        try:
            data.set_prices(moves)
        except (TypeError, ValueError) as err:
            raise ApiError(400, -1100, f"Bad prices control request: {err}") from None
        return {"symbols": {s: data.symbol_state(s) for s in moves}}


def control_book(api: LoopbackApi, req: Request) -> JSON:
    """``{"symbol": ..., "depth_scale": x, "spread_bps": b}`` (both optional; the call
    replaces the whole shape) or ``{"symbol": ..., "reset": true}``; answers the symbol's
    state (with its ``book`` shape)."""
    data = live_data(api)
    body = req.body if isinstance(req.body, dict) else {}
    symbol = body.get("symbol") or req.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
    _reject_unknown_fields(body, {"symbol", "depth_scale", "spread_bps", "reset"}, "book")
    symbol = symbol_id(symbol)
    api.rules(symbol)
    reset = body.get("reset", False)
    if not isinstance(reset, bool):
        raise ApiError(400, -1100, "Bad book control request: 'reset' must be true or false.")
    shaped = [k for k in ("depth_scale", "spread_bps") if body.get(k) is not None]
    if reset and shaped:
        raise ApiError(
            400,
            -1100,
            f"Bad book control request: 'reset' cannot be combined with {', '.join(shaped)}.",
        )
    depth_scale = _number(body.get("depth_scale", 1.0))
    if depth_scale is None:
        raise ApiError(400, -1100, "Bad book control request: 'depth_scale' must be a number.")
    raw_spread = body.get("spread_bps")
    spread_bps = None if raw_spread is None else _number(raw_spread)
    if raw_spread is not None and spread_bps is None:
        raise ApiError(400, -1100, "Bad book control request: 'spread_bps' must be a number.")
    try:
        data.set_book(symbol, depth_scale, spread_bps)
    except ValueError as err:
        raise ApiError(400, -1100, f"Bad book control request: {err}") from None
    return data.symbol_state(symbol)


def control_account(api: LoopbackApi, req: Request) -> JSON:
    """Balances, fee setting, every order and trade of the private spot account."""
    return api.matched_account().state()


def control_fees(api: LoopbackApi, req: Request) -> JSON:
    """``{"report": false}`` (no fee charged nor reported on later fills) / ``{"report":
    true}`` and / or ``{"rate": 0.001}``; answers ``{"report": ..., "rate": ...}``."""
    account = api.private_account()
    body = req.body if isinstance(req.body, dict) else {}
    _reject_unknown_fields(body, {"report", "rate"}, "fees")
    if not body:
        raise ApiError(400, -1102, "Bad fees control request: send 'report' and/or 'rate'.")
    report = body.get("report")
    if report is not None and not isinstance(report, bool):
        raise ApiError(400, -1100, "Bad fees control request: 'report' must be true or false.")
    raw_rate = body.get("rate")
    rate = None if raw_rate is None else _number(raw_rate)
    if raw_rate is not None and rate is None:
        raise ApiError(400, -1100, "Bad fees control request: 'rate' must be a number.")
    try:
        return account.set_fees(report=report, rate=rate)
    except ValueError as err:
        raise ApiError(400, -1100, f"Bad fees control request: {err}") from None


def control_balances(api: LoopbackApi, req: Request) -> JSON:
    """``{"balances": {"USDT": 5000, "BTC": 0}}``: set free balances; answers the account."""
    account = api.private_account()
    body = req.body if isinstance(req.body, dict) else {}
    _reject_unknown_fields(body, {"balances"}, "balances")
    raw = body.get("balances")
    if not isinstance(raw, dict) or not raw:
        raise ApiError(
            400,
            -1102,
            "Bad balances control request: 'balances' must be a non-empty object "
            '{"USDT": amount, ...}.',
        )
    amounts: dict[str, float] = {}
    for asset, value in raw.items():
        amount = _number(value)
        if amount is None:
            raise ApiError(400, -1100, f"Bad balances control request: {asset!r} needs a number.")
        amounts[asset] = amount
    try:
        account.set_balances(amounts)
    except ValueError as err:
        raise ApiError(400, -1100, f"Bad balances control request: {err}") from None
    return account.state()


def _number(value: Any) -> float | None:
    """A finite JSON number (or numeric string) as float; None for anything else (bools too)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _reject_unknown_fields(body: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        raise ApiError(
            400,
            -1100,
            f"Bad {what} control request: unknown field(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(map(repr, sorted(known)))}).",
        )
