"""``python -m freqtrade_metastrategy.loopback`` (see :func:`.cli.main`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
