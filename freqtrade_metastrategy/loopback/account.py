"""Live mode's private spot API: one in-memory Binance spot account (no HTTP in here).

:class:`SpotAccount` holds balances, orders and trades for ``freqtrade trade`` run live (not
dry-run) against the loopback exchange; it lives as long as the exchange process, so a bot
restarted against the same exchange finds its orders and balances again. Request signatures
and API keys are not checked.

- **Orders** (``LIMIT`` and ``MARKET``; ``timeInForce`` GTC / IOC / FOK) are checked against
  the symbol's rules (:class:`~.rules.MarketRules`: quantity on the lot step, price on the
  tick, notional at least :data:`~.rules.MIN_NOTIONAL`) and the free balance, like Binance.
  A market order, and a limit order that crosses the current price (buy at or above it, sell
  at or below), fills at once, completely, **at the current live price** (taker). A limit order
  that does not cross rests (``NEW``, its funds locked) and fills completely at its own price
  (maker) once the live price reaches it; the book is checked (:meth:`SpotAccount.match`)
  before every private request is answered. IOC / FOK limit orders that do not cross expire.
- **Fees**: by default every fill pays :data:`FEE_RATE` (0.1%) as Binance does, in the asset
  received (the base asset on a buy, the quote asset on a sell), reported in the order's
  ``fills`` and in ``myTrades`` (``commission`` / ``commissionAsset``). With
  ``report_fees=False`` fills are charged **no** fee and report none (no ``commission`` fields
  at all), as an exchange whose API does not report fees: Freqtrade then never learns the fee
  currency of the trade and re-handles its orders every loop.
- **Balances** start from the given amounts (every other asset at 0) and move with each fill.

This module must not import freqtrade.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .markets import JSON, fmt
from .rules import MIN_NOTIONAL, MarketRules

FEE_RATE = 0.001  # Binance spot's base taker / maker commission (0.1%)
DEFAULT_BALANCES: Mapping[str, float] = {"USDT": 100_000.0}
FIRST_ORDER_ID = 1001
FIRST_TRADE_ID = 5001
ORDER_TYPES = ("LIMIT", "MARKET")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
DEFAULT_LIST_LIMIT = 500
MAX_LIST_LIMIT = 1000
OPEN = "NEW"


class AccountError(Exception):
    """A rejected private request, answered as Binance does: HTTP 400 with ``code``/``msg``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _round8(value: float) -> float:
    return round(value, 8) + 0.0  # + 0.0: no "-0.00000000"


def _on_grid(value: float, unit: float) -> bool:
    steps = value / unit
    return abs(steps - round(steps)) < 1e-6


@dataclass(frozen=True)
class Fill:
    """One execution (a Binance ``myTrades`` row). ``commission`` None: no fee reported."""

    trade_id: int
    order_id: int
    symbol: str
    price: float
    qty: float
    quote_qty: float
    commission: float | None
    commission_asset: str | None
    time: int
    is_buyer: bool
    is_maker: bool

    def as_fill(self) -> JSON:
        """An entry of the order response's ``fills``."""
        entry: JSON = {"price": fmt(self.price), "qty": fmt(self.qty)}
        if self.commission is not None:
            entry["commission"] = fmt(self.commission)
            entry["commissionAsset"] = self.commission_asset
        entry["tradeId"] = self.trade_id
        return entry

    def as_trade(self) -> JSON:
        """A ``GET /api/v3/myTrades`` row."""
        row: JSON = {
            "symbol": self.symbol,
            "id": self.trade_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "quoteQty": fmt(self.quote_qty),
        }
        if self.commission is not None:
            row["commission"] = fmt(self.commission)
            row["commissionAsset"] = self.commission_asset
        row |= {
            "time": self.time,
            "isBuyer": self.is_buyer,
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }
        return row


@dataclass
class Order:
    order_id: int
    client_order_id: str
    rules: MarketRules
    side: str  # BUY / SELL
    type: str  # LIMIT / MARKET
    time_in_force: str
    price: float  # limit price; 0 for market orders
    orig_qty: float
    orig_quote_qty: float
    time: int
    status: str = OPEN
    executed_qty: float = 0.0
    cum_quote: float = 0.0
    update_time: int = 0
    locked: float = 0.0  # funds a resting order holds (quote on a buy, base on a sell)
    fills: list[Fill] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return self.rules.info.symbol

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    def as_json(self) -> JSON:
        """``GET /api/v3/order`` / ``openOrders`` / ``allOrders`` shape."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "cummulativeQuoteQty": fmt(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": fmt(0.0),
            "icebergQty": fmt(0.0),
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": True,
            "workingTime": self.time,
            "origQuoteOrderQty": fmt(self.orig_quote_qty),
            "selfTradePreventionMode": "NONE",
        }

    def response(self, resp_type: str) -> JSON:
        """``POST /api/v3/order`` answer (``newOrderRespType`` ACK / RESULT / FULL)."""
        ack: JSON = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time,
        }
        if resp_type == "ACK":
            return ack
        full = self.as_json()
        for key in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
            del full[key]
        result = ack | full
        if resp_type == "FULL":
            result["fills"] = [f.as_fill() for f in self.fills]
        return result


PriceOf = Callable[[str], float]


class SpotAccount:
    """Balances, orders and trades of the one account (see the module docstring).

    Thread-safe: every method runs under one lock. ``price_of(symbol)`` must not call back
    into the account (it is the live market data's current price).
    """

    def __init__(
        self,
        balances: Mapping[str, float] | None = None,
        *,
        fee_rate: float = FEE_RATE,
        report_fees: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self._free: dict[str, float] = {}
        self._locked: dict[str, float] = {}
        self._orders: dict[int, Order] = {}
        self._fills: list[Fill] = []
        self._next_order = FIRST_ORDER_ID
        self._next_trade = FIRST_TRADE_ID
        self.fee_rate = FEE_RATE
        self.report_fees = True
        self.set_fees(report=report_fees, rate=fee_rate)
        self.set_balances(DEFAULT_BALANCES if balances is None else balances)

    # -- settings ----------------------------------------------------------------------------
    def set_fees(self, *, report: bool | None = None, rate: float | None = None) -> JSON:
        """Fees of later fills: ``report=False`` charges and reports none; ``rate`` (0..0.02)
        is the commission rate charged while reporting. Answers :meth:`fees`."""
        if rate is not None and not (math.isfinite(rate) and 0 <= rate <= 0.02):
            raise ValueError(f"fee rate must be a number in 0..0.02, got {rate!r}")
        with self._lock:
            if report is not None:
                self.report_fees = bool(report)
            if rate is not None:
                self.fee_rate = float(rate)
            return self.fees()

    def fees(self) -> JSON:
        with self._lock:
            return {"report": self.report_fees, "rate": self.fee_rate}

    def set_balances(self, balances: Mapping[str, float]) -> None:
        """Set the free balance of the named assets (others unchanged; locked funds kept)."""
        checked: dict[str, float] = {}
        for asset, amount in balances.items():
            value = float(amount)
            if not asset or not (math.isfinite(value) and value >= 0):
                raise ValueError(f"balance of {asset!r} must be a number >= 0, got {amount!r}")
            checked[asset.upper()] = _round8(value)
        with self._lock:
            self._free.update(checked)

    # -- balances ----------------------------------------------------------------------------
    def _add(self, book: dict[str, float], asset: str, amount: float) -> None:
        book[asset] = _round8(book.get(asset, 0.0) + amount)

    def balances(self, assets: list[str] | None = None) -> dict[str, tuple[float, float]]:
        """asset -> (free, locked) for every asset ever held plus ``assets``."""
        with self._lock:
            names = sorted({*self._free, *self._locked, *(assets or [])})
            return {a: (self._free.get(a, 0.0), self._locked.get(a, 0.0)) for a in names}

    def account_payload(self, now: int, assets: list[str], omit_zero: bool = False) -> JSON:
        """``GET /api/v3/account``."""
        bps = round(self.fee_rate * 10_000)
        rate = fmt(self.fee_rate)
        balances = [
            {"asset": a, "free": fmt(free), "locked": fmt(locked)}
            for a, (free, locked) in self.balances(assets).items()
            if not omit_zero or free or locked
        ]
        return {
            "makerCommission": bps,
            "takerCommission": bps,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate, "buyer": fmt(0), "seller": fmt(0)},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": now,
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 1,
        }

    # -- orders ------------------------------------------------------------------------------
    def place(
        self,
        rules: MarketRules,
        *,
        side: str,
        order_type: str,
        quantity: float | None,
        quote_qty: float | None,
        price: float | None,
        time_in_force: str | None,
        client_order_id: str | None,
        last: float,
        now: int,
    ) -> Order:
        """Validate and execute a new order at the current price ``last`` (see the module
        docstring); raises :class:`AccountError` as Binance rejects."""
        side, order_type = side.upper(), order_type.upper()
        if side not in ("BUY", "SELL"):
            raise AccountError(-1117, "Invalid side.")
        if order_type not in ORDER_TYPES:
            raise AccountError(-1116, f"Invalid orderType {order_type} (loopback: LIMIT, MARKET).")
        with self._lock:
            if client_order_id and any(
                o.client_order_id == client_order_id and o.is_open for o in self._orders.values()
            ):
                raise AccountError(-2010, "Duplicate order sent.")
            if order_type == "MARKET":
                order = self._market_order(rules, side, quantity, quote_qty, price, last, now)
            else:
                order = self._limit_order(rules, side, quantity, price, time_in_force, now)
            order.client_order_id = client_order_id or f"loopback{order.order_id}"
            if order_type == "MARKET" or _crosses(side, order.price, last):
                self._check_funds(order, order.orig_qty, last)
                self._fill(order, last, now, maker=False)
            elif order.time_in_force != "GTC":
                order.status = "EXPIRED"
            else:
                held = order.orig_qty * order.price if side == "BUY" else order.orig_qty
                self._check_funds(order, order.orig_qty, order.price)
                asset = rules.info.quote if side == "BUY" else rules.info.base
                order.locked = _round8(held)
                self._add(self._free, asset, -order.locked)
                self._add(self._locked, asset, order.locked)
            self._orders[order.order_id] = order
            self._next_order += 1
            return order

    def _new_order(
        self, rules: MarketRules, side: str, order_type: str, tif: str, price: float, now: int
    ) -> Order:
        return Order(
            order_id=self._next_order,
            client_order_id="",
            rules=rules,
            side=side,
            type=order_type,
            time_in_force=tif,
            price=price,
            orig_qty=0.0,
            orig_quote_qty=0.0,
            time=now,
            update_time=now,
        )

    def _market_order(
        self,
        rules: MarketRules,
        side: str,
        quantity: float | None,
        quote_qty: float | None,
        price: float | None,
        last: float,
        now: int,
    ) -> Order:
        if price is not None:
            raise AccountError(-1106, "Parameter 'price' sent when not required.")
        if (quantity is None) == (quote_qty is None):
            raise AccountError(
                -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty."
            )
        order = self._new_order(rules, side, "MARKET", "GTC", 0.0, now)
        if quote_qty is not None:
            if not (math.isfinite(quote_qty) and quote_qty > 0):
                raise AccountError(-1100, "Illegal characters found in parameter 'quoteOrderQty'.")
            order.orig_quote_qty = _round8(quote_qty)
            quantity = rules.round_qty(quote_qty / last)
        assert quantity is not None
        order.orig_qty = self._checked_qty(rules, quantity, last)
        return order

    def _limit_order(
        self,
        rules: MarketRules,
        side: str,
        quantity: float | None,
        price: float | None,
        tif: str | None,
        now: int,
    ) -> Order:
        if tif is None:
            raise AccountError(-1102, "Mandatory parameter 'timeInForce' was not sent.")
        if tif.upper() not in TIME_IN_FORCE:
            raise AccountError(-1115, "Invalid timeInForce.")
        if price is None:
            raise AccountError(-1102, "Mandatory parameter 'price' was not sent.")
        if quantity is None:
            raise AccountError(-1102, "Mandatory parameter 'quantity' was not sent.")
        if not (math.isfinite(price) and price > 0) or not _on_grid(price, rules.tick):
            raise AccountError(-1013, "Filter failure: PRICE_FILTER")
        order = self._new_order(rules, side, "LIMIT", tif.upper(), price, now)
        order.orig_qty = self._checked_qty(rules, quantity, price)
        return order

    @staticmethod
    def _checked_qty(rules: MarketRules, quantity: float, price: float) -> float:
        if (
            not math.isfinite(quantity)
            or quantity < rules.step
            or not _on_grid(quantity, rules.step)
        ):
            raise AccountError(-1013, "Filter failure: LOT_SIZE")
        if quantity * price < MIN_NOTIONAL:
            raise AccountError(-1013, "Filter failure: NOTIONAL")
        return _round8(quantity)

    def _check_funds(self, order: Order, qty: float, price: float) -> None:
        info = order.rules.info
        if order.side == "BUY":
            asset, need = info.quote, _round8(qty * price)
        else:
            asset, need = info.base, qty
        if self._free.get(asset, 0.0) + 1e-12 < need:
            raise AccountError(-2010, "Account has insufficient balance for requested action.")

    def _fill(self, order: Order, price: float, now: int, *, maker: bool) -> None:
        """Execute the whole order at ``price``: balances, a :class:`Fill`, status FILLED."""
        info = order.rules.info
        qty = order.orig_qty
        quote_qty = _round8(qty * price)
        buy = order.side == "BUY"
        commission: float | None = None
        commission_asset: str | None = None
        charged = 0.0
        if self.report_fees:
            commission_asset = info.base if buy else info.quote
            charged = commission = _round8((qty if buy else quote_qty) * self.fee_rate)
        paid_asset, paid = (info.quote, quote_qty) if buy else (info.base, qty)
        got_asset, got = (info.base, qty) if buy else (info.quote, quote_qty)
        if order.locked:
            self._add(self._locked, paid_asset, -order.locked)
            self._add(self._free, paid_asset, order.locked - paid)
            order.locked = 0.0
        else:
            self._add(self._free, paid_asset, -paid)
        self._add(self._free, got_asset, got - charged)
        fill = Fill(
            trade_id=self._next_trade,
            order_id=order.order_id,
            symbol=order.symbol,
            price=price,
            qty=qty,
            quote_qty=quote_qty,
            commission=commission,
            commission_asset=commission_asset,
            time=now,
            is_buyer=buy,
            is_maker=maker,
        )
        self._next_trade += 1
        self._fills.append(fill)
        order.fills.append(fill)
        order.executed_qty = qty
        order.cum_quote = quote_qty
        order.status = "FILLED"
        order.update_time = now

    def match(self, price_of: PriceOf, now: int) -> int:
        """Fill resting limit orders the live price has reached (at their limit price);
        returns how many filled."""
        filled = 0
        with self._lock:
            for order in self._orders.values():
                if not order.is_open:
                    continue
                if _crosses(order.side, order.price, price_of(order.symbol)):
                    self._fill(order, order.price, now, maker=True)
                    filled += 1
        return filled

    def find(self, symbol: str, order_id: int | None, client_order_id: str | None) -> Order:
        """The order by id or client id (either must be given); -2013 when unknown."""
        if order_id is None and not client_order_id:
            raise AccountError(
                -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty."
            )
        with self._lock:
            for order in self._orders.values():
                if order.symbol != symbol:
                    continue
                if order_id is not None and order.order_id != order_id:
                    continue
                if client_order_id and order.client_order_id != client_order_id:
                    continue
                return order
        raise AccountError(-2013, "Order does not exist.")

    def cancel(
        self, symbol: str, order_id: int | None, client_order_id: str | None, now: int
    ) -> Order:
        """Cancel an open order (unlocking its funds); -2011 when it is not open."""
        with self._lock:
            try:
                order = self.find(symbol, order_id, client_order_id)
            except AccountError as err:
                if err.code == -2013:
                    raise AccountError(-2011, "Unknown order sent.") from None
                raise
            if not order.is_open:
                raise AccountError(-2011, "Unknown order sent.")
            info = order.rules.info
            asset = info.quote if order.side == "BUY" else info.base
            self._add(self._locked, asset, -order.locked)
            self._add(self._free, asset, order.locked)
            order.locked = 0.0
            order.status = "CANCELED"
            order.update_time = now
            return order

    def open_orders(self, symbol: str | None) -> list[Order]:
        with self._lock:
            return [
                o
                for o in self._orders.values()
                if o.is_open and (symbol is None or o.symbol == symbol)
            ]

    def orders(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> list[Order]:
        """``allOrders``: the symbol's orders (oldest first), from ``from_id`` / in the time
        window; the first ``limit`` with ``from_id`` / ``start_ms``, otherwise the last."""
        with self._lock:
            rows = [o for o in self._orders.values() if o.symbol == symbol]
        rows = [
            o
            for o in rows
            if (from_id is None or o.order_id >= from_id)
            and (start_ms is None or o.time >= start_ms)
            and (end_ms is None or o.time <= end_ms)
        ]
        return _limited(rows, limit, first=from_id is not None or start_ms is not None)

    def trades(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> list[Fill]:
        """``myTrades``: the symbol's fills (oldest first), like :meth:`orders`."""
        with self._lock:
            rows = [f for f in self._fills if f.symbol == symbol]
        rows = [
            f
            for f in rows
            if (order_id is None or f.order_id == order_id)
            and (from_id is None or f.trade_id >= from_id)
            and (start_ms is None or f.time >= start_ms)
            and (end_ms is None or f.time <= end_ms)
        ]
        return _limited(rows, limit, first=from_id is not None or start_ms is not None)

    def state(self) -> JSON:
        """``GET /_control/account``: balances, fees, every order and trade."""
        with self._lock:
            return {
                "balances": {
                    a: {"free": free, "locked": locked}
                    for a, (free, locked) in self.balances().items()
                },
                "fees": self.fees(),
                "orders": [o.as_json() for o in self._orders.values()],
                "trades": [f.as_trade() for f in self._fills],
            }


def _crosses(side: str, limit: float, last: float) -> bool:
    """A buy at or above the price, a sell at or below it, is executable."""
    return limit >= last if side == "BUY" else limit <= last


def _limited(rows: list[Any], limit: int | None, *, first: bool) -> list[Any]:
    size = DEFAULT_LIST_LIMIT if limit is None else max(1, min(limit, MAX_LIST_LIMIT))
    return rows[:size] if first else rows[-size:]
