"""``freqtrade-metastrategy tune``'s core: the search space, one trial's walk-forward score on
cached outcomes, and the overfitting checks (pure: never imports Freqtrade)."""
