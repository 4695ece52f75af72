"""The ``freqtrade-metastrategy`` commands, one module per command family (as Freqtrade's).

:mod:`.parser` (argument parser and ``main``), :mod:`.store_commands` (``show``, ``export``,
``import``, ``reset``), :mod:`.evaluate_commands` (``evaluate``, ``ope``) and :mod:`.shared`
(config and store location helpers). ``exchange`` mounts :mod:`..loopback.cli`.
"""
