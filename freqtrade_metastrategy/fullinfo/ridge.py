"""A ridge regression per profile, kept as sufficient statistics (exact, cheap, persisted).

Every released signal adds one context vector ``x`` (``d`` features) and one reward per profile
``y`` (``k`` profiles). Because every profile sees the same signals (full information), the
feature moments are shared and only the cross moments are per profile:

``W = sum w_i``, ``Sx = sum w_i x_i``, ``Sxx = sum w_i x_i x_i'``, ``Sy = sum w_i y_i``,
``Sxy = sum w_i x_i y_i'`` -- with the weights of the learner's estimator (``decay`` per new
signal: 1 for a running mean, ``0.5 ** (1 / half_life)`` for a discounted mean).

The fit is the ridge on standardised features, computed exactly from those moments at decision
time: with ``mu = Sx/W``, covariance ``C = Sxx/W - mu mu'``, scales ``s = sqrt(diag C)``,
``Cz = C / (s s')`` and ``cz = (Sxy/W - mu ybar') / s``, solve ``(Cz + (lam/W) I) B = cz``; the
prediction is ``ybar + B' ((x - mu) / s)``. ``lam`` is the prior's weight in signals: with ``W``
signals of evidence the coefficients are shrunk by ``lam`` pseudo-signals towards "the context
does not matter" (the profile's mean). A feature that never varied (``s`` ~ 0) is left out.
The order of the updates does not matter for a running mean (sums), and the solution is
cached until the next update.

Updates are queued and applied, one by one in the order they came, only when the moments are
read (a fit or :meth:`RidgeStats.to_dict`) or when the queue holds
:data:`MAX_QUEUED` signals: a policy that never asks the ridge for a prediction (the default
``walk_forward_static`` replayed by ``tune``) does not pay for it, and the moments are bit for
bit those of applying every update at once.

>>> r = RidgeStats(d=1, k=2, lam=0.0)
>>> for x, y in ((0.0, (1.0, 0.0)), (1.0, (3.0, 0.0)), (2.0, (5.0, 0.0))):
...     r.update(np.array([x]), np.array(y))
>>> [round(float(v), 6) for v in r.predict(np.array([3.0]))]   # y0 = 1 + 2x, y1 = 0
[7.0, 0.0]
>>> RidgeStats.from_dict(r.to_dict()).predict(np.array([3.0])).round(6).tolist()
[7.0, 0.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Below this variance a feature is treated as constant (left out of the fit).
MIN_VARIANCE = 1e-12
#: Queued updates applied at once when this many are waiting (bounds the queue's memory).
MAX_QUEUED = 65_536


class RidgeStats:
    """Weighted moments of (context, rewards) and the ridge fit they imply (see module doc)."""

    def __init__(self, d: int, k: int, lam: float) -> None:
        self.d, self.k, self.lam = d, k, float(lam)
        self._w = 0.0
        self._sx: FloatArray = np.zeros(d)
        self._sxx: FloatArray = np.zeros((d, d))
        self._sy: FloatArray = np.zeros(k)
        self._sxy: FloatArray = np.zeros((d, k))
        self._queue: list[tuple[FloatArray, FloatArray, float]] = []
        self.count = 0
        self._fit: tuple[FloatArray, FloatArray, FloatArray, FloatArray] | None = None

    def update(self, x: FloatArray, y: FloatArray, decay: float = 1.0) -> None:
        """Add one signal (``x``: ``d`` features, ``y``: ``k`` rewards); older ones x ``decay``.
        Queued (see module doc); the arrays must not be changed afterwards.

        :raises ValueError: ``x`` or ``y`` of another length (nothing is queued)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.shape != (self.d,) or y.shape != (self.k,):
            raise ValueError(f"ridge update: need {self.d} features and {self.k} rewards, got "
                             f"shapes {x.shape} and {y.shape}")
        self._queue.append((x, y, decay))
        self.count += 1
        self._fit = None
        if len(self._queue) >= MAX_QUEUED:
            self._apply()

    def _apply(self) -> None:
        """Apply the queued updates in order (each one once, whatever happens)."""
        queue, self._queue = self._queue, []
        for x, y, decay in queue:
            if decay != 1.0:
                self._w *= decay
                self._sx *= decay
                self._sxx *= decay
                self._sy *= decay
                self._sxy *= decay
            self._w += 1.0
            self._sx += x
            self._sxx += x[:, None] * x
            self._sy += y
            self._sxy += x[:, None] * y

    def fit(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """``(mu, inv_scale, B, ybar)``: prediction = ``ybar + ((x - mu) * inv_scale) @ B``."""
        if self._fit is not None:
            return self._fit
        self._apply()
        if self._w <= 0.0:
            z = np.zeros(self.d)
            fit = (z, z, np.zeros((self.d, self.k)), np.full(self.k, np.nan))
            self._fit = fit
            return fit
        mu = self._sx / self._w
        ybar = self._sy / self._w
        cov = self._sxx / self._w - np.outer(mu, mu)
        var = np.diag(cov).copy()
        used = var > MIN_VARIANCE
        inv = np.zeros(self.d)
        inv[used] = 1.0 / np.sqrt(var[used])
        b = np.zeros((self.d, self.k))
        if used.any():
            u = np.flatnonzero(used)
            cz = cov[np.ix_(u, u)] * np.outer(inv[u], inv[u])
            cxy = (self._sxy[u] / self._w - np.outer(mu[u], ybar)) * inv[u][:, None]
            a = cz + (self.lam / self._w) * np.eye(len(u))
            try:
                b[u] = np.linalg.solve(a, cxy)
            except np.linalg.LinAlgError:
                b[u] = np.linalg.lstsq(a, cxy, rcond=None)[0]
        fit = (mu, inv, b, ybar)
        self._fit = fit
        return fit

    def predict(self, x: FloatArray) -> FloatArray:
        """Predicted reward of every profile for context ``x`` (NaN before any update)."""
        mu, inv, b, ybar = self.fit()
        out: FloatArray = ybar + ((np.asarray(x, dtype=np.float64) - mu) * inv) @ b
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state."""
        self._apply()
        return {"d": self.d, "k": self.k, "lam": self.lam, "w": self._w, "count": self.count,
                "sx": self._sx.tolist(), "sxx": self._sxx.tolist(), "sy": self._sy.tolist(),
                "sxy": self._sxy.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RidgeStats:
        out = cls(int(data["d"]), int(data["k"]), float(data["lam"]))
        out._w = float(data["w"])
        out.count = int(data["count"])
        out._sx = np.asarray(data["sx"], dtype=np.float64).reshape(out.d)
        out._sxx = np.asarray(data["sxx"], dtype=np.float64).reshape(out.d, out.d)
        out._sy = np.asarray(data["sy"], dtype=np.float64).reshape(out.k)
        out._sxy = np.asarray(data["sxy"], dtype=np.float64).reshape(out.d, out.k)
        return out
