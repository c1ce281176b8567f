"""Exact tabular MDP engine (numpy, float64), batched over leading dims: ground truth for the
theory claims (surrogate, Theorem 1, Algorithm 1, natural gradient) and the gridworld climb.

Rewards are r(s, a) (the paper's r(s) is a special case; see :mod:`trpo_ref.tabular.mdp`).

Every public function validates its inputs (ValueError naming the problem and the first bad
index); the checks are vectorized reductions, cheap next to the linear solves, so there is no
``validate=False`` switch. Internal paths whose policies are valid by construction (softmax
outputs, already-checked arrays) call the unchecked helpers (``evaluate_unchecked`` etc.).
:func:`theorem1_check` is the batched Theorem-1 path the speed benchmark measures.
"""

from trpo_ref.tabular.bounds import (
    Theorem1Check,
    penalty_coefficient,
    surrogate,
    surrogate_error_bound,
    theorem1_bound,
    theorem1_check,
)
from trpo_ref.tabular.divergence import kl, kl_max, kl_mean, tv_max
from trpo_ref.tabular.evaluate import Evaluation, evaluate, expected_return, optimal_policy
from trpo_ref.tabular.gradients import (
    fisher_matrix,
    fisher_vector_product,
    natural_gradient,
    policy_gradient,
)
from trpo_ref.tabular.mdp import (
    ACTION_ARROWS,
    ACTION_NAMES,
    GOAL,
    GOAL_STATE,
    GRID_SIZE,
    GRIDWORLD_GAMMA,
    MDP,
    START,
    START_STATE,
    TRAP,
    TRAP_STATE,
    grid_state,
    gridworld,
    random_mdp,
    render_policy,
)
from trpo_ref.tabular.policy import (
    deterministic_policy,
    random_policy,
    softmax,
    uniform_policy,
    validate_policy,
)
from trpo_ref.tabular.updates import (
    Algorithm1Result,
    StepResult,
    algorithm1_step,
    gradient_step,
    kl_penalty_step,
    trust_region_step,
)

__all__ = [
    "ACTION_ARROWS",
    "ACTION_NAMES",
    "GOAL",
    "GOAL_STATE",
    "GRIDWORLD_GAMMA",
    "GRID_SIZE",
    "MDP",
    "START",
    "START_STATE",
    "TRAP",
    "TRAP_STATE",
    "Algorithm1Result",
    "Evaluation",
    "StepResult",
    "Theorem1Check",
    "algorithm1_step",
    "deterministic_policy",
    "evaluate",
    "expected_return",
    "fisher_matrix",
    "fisher_vector_product",
    "gradient_step",
    "grid_state",
    "gridworld",
    "kl",
    "kl_max",
    "kl_mean",
    "kl_penalty_step",
    "natural_gradient",
    "optimal_policy",
    "penalty_coefficient",
    "policy_gradient",
    "random_mdp",
    "random_policy",
    "render_policy",
    "softmax",
    "surrogate",
    "surrogate_error_bound",
    "theorem1_bound",
    "theorem1_check",
    "trust_region_step",
    "tv_max",
    "uniform_policy",
    "validate_policy",
]
