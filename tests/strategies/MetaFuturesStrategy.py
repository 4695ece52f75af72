"""MetaStrategy for futures tests: shorts enabled, leverage from the config key
``test_leverage`` (default 1)."""

from datetime import datetime
from typing import Any

from freqtrade_metastrategy.strategy import MetaStrategyBase


class MetaFuturesStrategy(MetaStrategyBase):
    can_short = True

    def leverage(self, pair: str, current_time: datetime, current_rate: float,
                 proposed_leverage: float, max_leverage: float, entry_tag: str | None,
                 side: str, **kwargs: Any) -> float:
        return float(self.config.get("test_leverage", 1.0))
