"""Observation normalization with statistics frozen between explicit updates.

The training loop normalizes with the statistics of all *previous* batches, then folds the new
batch in only after the policy and value updates. So one batch is normalized by one set of
statistics throughout: the policy that sampled an action, pi_old in the update and the value fit
all see the same inputs. Before the first update the statistics are the identity (mean 0,
variance 1).
"""

from __future__ import annotations

import numpy as np


class RunningObsNormalizer:
    """(x - mean) / sqrt(var + eps), clipped to +-clip; mean and var over all folded-in rows."""

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        self.mean = np.zeros(dim, dtype=np.float64)
        self.var = np.ones(dim, dtype=np.float64)
        self.count = 0
        self.clip, self.eps = clip, eps
        self._scale, self._scaled_var = np.ones(dim), None  # sqrt(var + eps) of _scaled_var

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        # Called once per env step: the divisor is computed once per set of statistics (var is
        # replaced, never changed in place), and minimum(maximum(.)) is np.clip's result
        # without its wrapper's overhead; the same numbers, bit for bit.
        if self._scaled_var is not self.var:
            self._scale, self._scaled_var = np.sqrt(self.var + self.eps), self.var
        scaled = (np.asarray(obs, dtype=np.float64) - self.mean) / self._scale
        return np.minimum(np.maximum(scaled, -self.clip), self.clip)

    def update(self, batch: np.ndarray) -> None:
        """Fold rows of ``batch`` (N, dim) into the statistics (parallel-variance formula)."""
        batch = np.asarray(batch, dtype=np.float64)
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean, batch_var = batch.mean(axis=0), batch.var(axis=0)
        if self.count == 0:
            self.mean, self.var, self.count = batch_mean, batch_var, n
            return
        total = self.count + n
        diff = batch_mean - self.mean
        self.mean = self.mean + diff * n / total
        moment = self.var * self.count + batch_var * n + diff**2 * self.count * n / total
        self.var = moment / total
        self.count = total

    def state_dict(self) -> dict[str, object]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}
