"""Finite discounted MDPs as arrays, optionally batched: the ground truth for the theory claims.

Conventions (paper section 2, with one generalisation): an MDP is ``(P, r, gamma, mu0)`` with
``P[..., s, a, s']`` the transition probabilities, ``r[..., s, a]`` the reward for taking ``a`` in
``s``, ``gamma`` in [0, 1) and ``mu0[..., s]`` the start distribution. The paper writes ``r(s)``;
we use ``r(s, a)``, which contains ``r(s)`` as a special case. Every result we check still holds:
the identity eta(pi~) = eta(pi) + E_{tau ~ pi~}[sum_t gamma^t A_pi(s_t, a_t)] behind eq. (3) and
the proofs of Theorem 1 (eqs. 8, 9 and App. A) use the reward only through A_pi, and
A_pi(s, a) = r(s, a) + gamma E[V_pi(s')] - V_pi(s) keeps every property they need.

Leading dimensions of ``P`` are a batch: one :class:`MDP` object can hold B MDPs of the same
size, and every function in :mod:`trpo_ref.tabular` broadcasts over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Absolute tolerance on "sums to 1" for transition rows, start distributions and policies.
PROB_TOL = 1e-8


def first_index(mask: np.ndarray) -> tuple[int, ...]:
    """Index of the first True entry of ``mask`` (C order), as a tuple of ints."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


def format_index(name: str, index: tuple[int, ...], trailing_colon: bool = False) -> str:
    """``format_index("P", (2, 1), True) == "P[2, 1, :]"``; used in error messages."""
    parts = [str(i) for i in index] + ([":"] if trailing_colon else [])
    return f"{name}[{', '.join(parts)}]"


def check_distributions(x: np.ndarray, name: str, tol: float = PROB_TOL) -> None:
    """Raise ValueError unless every row ``x[..., :]`` is finite, >= 0 and sums to 1 (+- tol).

    Vectorized and cheap in the common (valid) case: two reductions; the offending index is
    located only when a check fails. The message names the array and the first bad index.
    """
    sums = x.sum(axis=-1)
    # A NaN or inf anywhere makes its row sum non-finite, so one isfinite on the sums suffices
    # (an overflow to inf in the sum is caught too: such a row cannot sum to 1).
    if not np.isfinite(sums).all():
        bad = ~np.isfinite(x)
        if bad.any():
            idx = first_index(bad)
            raise ValueError(f"{format_index(name, idx)} = {x[idx]} is not finite")
        idx = first_index(~np.isfinite(sums))
        raise ValueError(f"{format_index(name, idx, True)} does not have a finite sum")
    if x.size and x.min() < 0:
        idx = first_index(x < 0)
        raise ValueError(f"{format_index(name, idx)} = {x[idx]:.6g} is negative")
    err = np.abs(sums - 1.0)
    if err.size and err.max() > tol:
        idx = first_index(err > tol)
        raise ValueError(
            f"{format_index(name, idx, True)} sums to {sums[idx]:.12g}, expected 1 "
            f"(tolerance {tol:g})"
        )


def _as_float_array(x: Any, name: str) -> np.ndarray:
    try:
        arr = np.array(x, dtype=np.float64)  # a private copy: the MDP is immutable
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers: {exc}") from None
    return arr


@dataclass(frozen=True, eq=False)
class MDP:
    """A finite discounted MDP, or a batch of them sharing (S, A).

    Shapes: ``P`` (..., S, A, S); ``r`` (..., S, A); ``gamma`` scalar or (...,); ``mu0`` (..., S).
    ``r``, ``gamma`` and ``mu0`` may have fewer leading dimensions than ``P`` if they broadcast to
    its batch shape ``P.shape[:-3]`` (e.g. one start distribution for a whole batch); they are
    stored broadcast. Arrays are copied to float64 and made read-only, so a validated MDP stays
    valid. ``mdp[i]`` indexes the batch (any numpy index on the leading dimensions).

    Raises ValueError, naming the problem and the first offending index, when a row of ``P`` or
    ``mu0`` is not a probability distribution (tolerance ``PROB_TOL`` on the sum, no negative
    entries), anything is non-finite, ``gamma`` is outside [0, 1), or shapes do not match.
    Rewards may be any finite reals.
    """

    P: np.ndarray
    r: np.ndarray
    gamma: np.ndarray
    mu0: np.ndarray

    def __post_init__(self) -> None:
        P = _as_float_array(self.P, "P")
        if P.ndim < 3 or P.shape[-1] != P.shape[-3]:
            raise ValueError(f"P must have shape (..., S, A, S), got {P.shape}")
        if P.shape[-1] == 0 or P.shape[-2] == 0:
            raise ValueError(f"P must have at least one state and one action, got {P.shape}")
        batch, (n_states, n_actions) = P.shape[:-3], P.shape[-3:-1]
        r = self._broadcast("r", self.r, (*batch, n_states, n_actions))
        mu0 = self._broadcast("mu0", self.mu0, (*batch, n_states))
        gamma = _as_float_array(self.gamma, "gamma")
        if gamma.ndim:
            gamma = self._broadcast("gamma", gamma, batch)
        if gamma.size and not (np.isfinite(gamma).all() and gamma.min() >= 0 and gamma.max() < 1):
            bad = ~((gamma >= 0) & (gamma < 1))
            where = "" if gamma.ndim == 0 else f"{format_index('gamma', first_index(bad))} "
            value = gamma[first_index(bad)] if gamma.ndim else gamma
            raise ValueError(f"gamma {where}= {float(value):g} is outside [0, 1)")
        if not np.isfinite(r).all():
            idx = first_index(~np.isfinite(r))
            raise ValueError(f"{format_index('r', idx)} = {r[idx]} is not finite")
        check_distributions(P, "P")
        check_distributions(mu0, "mu0")
        for name, arr in (("P", P), ("r", r), ("gamma", gamma), ("mu0", mu0)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @staticmethod
    def _broadcast(name: str, x: Any, shape: tuple[int, ...]) -> np.ndarray:
        arr = _as_float_array(x, name)
        try:
            return np.array(np.broadcast_to(arr, shape))
        except ValueError:
            raise ValueError(
                f"{name} has shape {arr.shape}, which does not match (broadcast to) {shape} "
                "implied by P"
            ) from None

    @property
    def n_states(self) -> int:
        return self.P.shape[-1]

    @property
    def n_actions(self) -> int:
        return self.P.shape[-2]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.P.shape[:-3]

    def __getitem__(self, index: Any) -> MDP:
        if not self.batch_shape:
            raise IndexError("this MDP is not batched; only a batch of MDPs can be indexed")
        if not isinstance(index, tuple):
            index = (index,)
        if any(i is Ellipsis for i in index) or len(index) > len(self.batch_shape):
            raise IndexError(
                f"an MDP batch of shape {self.batch_shape} takes at most "
                f"{len(self.batch_shape)} indices, no Ellipsis"
            )
        gamma = self.gamma[index] if self.gamma.ndim else self.gamma
        return MDP(self.P[index], self.r[index], gamma, self.mu0[index])

    def __repr__(self) -> str:
        batch = f", batch_shape={self.batch_shape}" if self.batch_shape else ""
        gamma = f"{float(self.gamma):g}" if self.gamma.ndim == 0 else "array"
        return f"MDP(n_states={self.n_states}, n_actions={self.n_actions}, gamma={gamma}{batch})"


def random_mdp(
    seed: int | np.random.Generator | np.random.SeedSequence,
    n_states: int,
    n_actions: int,
    gamma: float,
    *,
    n_mdps: int | None = None,
    sparsity: float = 0.0,
    reward_scale: float = 1.0,
) -> MDP:
    """A random MDP (or a batch of ``n_mdps``), deterministic in ``seed``.

    Transition rows ``P[s, a, :]`` are Dirichlet(1, ..., 1) over the next states that are kept;
    ``sparsity`` is the fraction of next states zeroed in each row, chosen at random, with at
    least one kept (``sparsity=1`` gives deterministic transitions). Rewards ``r[s, a]`` are
    uniform on [-reward_scale, reward_scale]; ``mu0`` is Dirichlet(1, ..., 1) (full support).
    """
    if int(n_states) < 1 or int(n_actions) < 1:
        raise ValueError(f"need n_states >= 1 and n_actions >= 1, got {n_states}, {n_actions}")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity = {sparsity} is outside [0, 1]")
    if n_mdps is not None and int(n_mdps) < 1:
        raise ValueError(f"n_mdps = {n_mdps} must be >= 1 (or None for a single MDP)")
    if not (np.isfinite(reward_scale) and reward_scale >= 0):
        raise ValueError(f"reward_scale = {reward_scale} must be finite and >= 0")
    rng = np.random.default_rng(seed)
    batch = () if n_mdps is None else (int(n_mdps),)
    S, A = int(n_states), int(n_actions)
    weights = rng.standard_exponential((*batch, S, A, S))  # normalized exponentials = Dirichlet(1)
    n_zeroed = min(S - 1, round(sparsity * S))
    if n_zeroed:
        order = rng.random((*batch, S, A, S)).argsort(axis=-1)
        np.put_along_axis(weights, order[..., :n_zeroed], 0.0, axis=-1)
    P = weights / weights.sum(axis=-1, keepdims=True)
    r = rng.uniform(-reward_scale, reward_scale, (*batch, S, A))
    mu0 = rng.standard_exponential((*batch, S))
    mu0 /= mu0.sum(axis=-1, keepdims=True)
    return MDP(P, r, gamma, mu0)


# --------------------------------------------------------------------------------------------
# The gridworld of the seed explainer
# --------------------------------------------------------------------------------------------

GRID_SIZE = 5
START = (0, 0)  # (row, col); row 0 is the top
GOAL = (4, 4)
TRAP = (2, 2)
GRIDWORLD_GAMMA = 0.95
ACTION_NAMES = ("up", "right", "down", "left")
ACTION_ARROWS = ("^", ">", "v", "<")
_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))


def grid_state(row: int, col: int) -> int:
    """State index of the gridworld cell (row, col): ``row * GRID_SIZE + col``."""
    if not (0 <= row < GRID_SIZE and 0 <= col < GRID_SIZE):
        raise ValueError(f"cell ({row}, {col}) is outside the {GRID_SIZE}x{GRID_SIZE} grid")
    return row * GRID_SIZE + col


START_STATE = grid_state(*START)
GOAL_STATE = grid_state(*GOAL)
TRAP_STATE = grid_state(*TRAP)


def gridworld(*, gamma: float = GRIDWORLD_GAMMA) -> MDP:
    """The 5x5 gridworld (25 states, 4 actions, gamma 0.95) standing in for the seed explainer's
    world: the explainer fixes a goal worth +1 and a trap worth -1; this layout is our choice::

            col 0   1   2   3   4
        row 0   S   .   .   .   .        S  start (0, 0): mu0 is all on it
            1   .   .   .   .   .        X  trap  (2, 2): -1, absorbing
            2   .   .   X   .   .        G  goal  (4, 4): +1, absorbing
            3   .   .   .   .   .
            4   .   .   .   .   G

    State ``row * 5 + col``; actions 0 up, 1 right, 2 down, 3 left. Moves are deterministic; a
    move into the outer wall leaves the agent where it is. The trap sits in the middle of the
    shortest routes: 36 of the 70 shortest (8-step) paths from S to G pass through it, so a good
    policy routes around it (along the edges or off-centre).

    Rewards are received on entering: ``r[s, a] = +1`` if the move takes the agent into G,
    ``-1`` if into X, 0 otherwise. G and X are absorbing: every action loops back with reward 0
    (no separate sink state). Hence the optimal return is gamma^7 (G entered on the 8th move).
    """
    n = GRID_SIZE
    S, A = n * n, len(_MOVES)
    P = np.zeros((S, A, S))
    r = np.zeros((S, A))
    for row in range(n):
        for col in range(n):
            s = grid_state(row, col)
            if s in (GOAL_STATE, TRAP_STATE):
                P[s, :, s] = 1.0
                continue
            for a, (dr, dc) in enumerate(_MOVES):
                nr, nc = row + dr, col + dc
                if not (0 <= nr < n and 0 <= nc < n):
                    nr, nc = row, col  # wall: stay put
                s_next = grid_state(nr, nc)
                P[s, a, s_next] = 1.0
                r[s, a] = 1.0 if s_next == GOAL_STATE else -1.0 if s_next == TRAP_STATE else 0.0
    mu0 = np.zeros(S)
    mu0[START_STATE] = 1.0
    return MDP(P, r, gamma, mu0)


def render_policy(pi: np.ndarray) -> str:
    """The gridworld policy ``pi`` (25, 4) as a 5x5 block of arrows (most likely action).

    G and X mark the goal and the trap (their actions do not matter). For the CLI::

        > > > > v
        ...
    """
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (GRID_SIZE * GRID_SIZE, len(_MOVES)):
        raise ValueError(f"pi has shape {pi.shape}, expected {(GRID_SIZE * GRID_SIZE, 4)}")
    best = pi.argmax(axis=-1)
    rows = []
    for row in range(GRID_SIZE):
        cells = []
        for col in range(GRID_SIZE):
            s = grid_state(row, col)
            cells.append(
                "G" if s == GOAL_STATE else "X" if s == TRAP_STATE else ACTION_ARROWS[best[s]]
            )
        rows.append(" ".join(cells))
    return "\n".join(rows)
