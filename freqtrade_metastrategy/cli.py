"""``freqtrade-metastrategy`` (console script and ``python -m freqtrade_metastrategy.cli``).

A thin entry point: the commands live in :mod:`freqtrade_metastrategy.commands`.
"""

from __future__ import annotations

import sys

from freqtrade_metastrategy.commands.parser import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
