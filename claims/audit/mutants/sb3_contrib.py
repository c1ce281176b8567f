"""Mutants of sb3-contrib's TRPO update (``sb3_contrib.trpo.trpo.TRPO.train`` and the functions
it calls), built from the installed source at run time (:mod:`claims.audit.mutants`).

Written against sb3-contrib 2.9.2; an edit whose text a later version lacks makes its mutant
"not applicable" in the detection table.

:func:`actor_only` is the adapter the mutant check runs by default: sb3-contrib's TRPO with
``n_critic_updates=0``. The step claims see only the actor, and in sb3-contrib the critic is a
separate network fitted *after* the actor's step, from numbers only it uses, while every
update reseeds numpy and torch: the actor's updates are bit for bit those of the default
(checked by tests/test_mutants.py), at half the time.
"""

from __future__ import annotations

from typing import Any

from claims.audit.mutants import Edit, Mutant


def actor_only() -> Any:
    """``--impl claims.audit.mutants.sb3_contrib:actor_only``: sb3-contrib's TRPO without the
    critic's fitting (the actor's steps unchanged; see the module docstring)."""
    from claims.adapters.sb3_contrib import SB3ContribTRPO

    return SB3ContribTRPO(n_critic_updates=0)

TRAIN = "sb3_contrib.trpo.trpo:TRPO.train"
FVP = "sb3_contrib.trpo.trpo:TRPO.hessian_vector_product"
CG = "sb3_contrib.trpo.trpo:conjugate_gradient_solver"  # looked up in trpo.py's namespace

ACCEPT = "if (kl_div < self.target_kl) and (new_policy_objective > policy_objective):"
KL = "kl_div = kl_divergence(distribution, old_distribution).mean()"
SHRINK = "line_search_backtrack_coeff *= self.line_search_shrinking_factor"

MUTANTS: tuple[Mutant, ...] = (
    # --- bugs: the line search -----------------------------------------------------------
    Mutant("no_kl_test", "line search: KL test removed (accepts any step that improves L)",
           (Edit(TRAIN, ACCEPT, "if new_policy_objective > policy_objective:"),)),
    Mutant("kl_test_loosened", "line search: KL test loosened to 1.5 delta",
           (Edit(TRAIN, ACCEPT, "if (kl_div < 1.5 * self.target_kl) and "
                                "(new_policy_objective > policy_objective):"),)),
    Mutant("no_improvement_test", "line search: surrogate-improvement test removed",
           (Edit(TRAIN, ACCEPT, "if kl_div < self.target_kl:"),)),
    Mutant("no_restore_on_failure", "line search: a failed search keeps the last candidate",
           (Edit(TRAIN, "param.data = original_param.data.clone()", "pass"),)),
    Mutant("never_backtracks", "line search: never shrinks the step (full step or nothing)",
           (Edit(TRAIN, SHRINK, "line_search_backtrack_coeff *= 1.0"),)),
    Mutant("accepts_first_candidate", "line search: the full step is accepted untested",
           (Edit(TRAIN, ACCEPT, "if True:"),)),
    # --- bugs: the step size ---------------------------------------------------------------
    Mutant("step_scale_without_factor_2", "step scale sqrt(delta / sAs), not sqrt(2 delta / sAs)",
           (Edit(TRAIN, "line_search_max_step_size = 2 * self.target_kl",
                 "line_search_max_step_size = self.target_kl"),)),
    Mutant("step_scale_without_sqrt", "step scale 2 delta / sAs, the square root forgotten",
           (Edit(TRAIN, "line_search_max_step_size = np.sqrt(line_search_max_step_size)",
                 "line_search_max_step_size = line_search_max_step_size"),)),
    # --- bugs: the direction (CG and the Fisher) -------------------------------------------
    Mutant("one_cg_iteration", "conjugate gradient cut to 1 iteration",
           (Edit(TRAIN, "max_iter=self.cg_max_steps", "max_iter=1"),)),
    Mutant("huge_fvp_damping", "Fisher-vector product damping x1000 (0.1 -> 100)",
           (Edit(FVP, "self.cg_damping * vector", "1000 * self.cg_damping * vector"),)),
    Mutant("fisher_of_attached_kl", "Fisher from KL(pi || pi) with both sides attached (it is "
           "identically 0, so the 'Fisher' is the damping alone)",
           (Edit(TRAIN, KL, "kl_div = kl_divergence(distribution, "
                            "self.policy.get_distribution(rollout_data.observations)).mean()",
                 count=2, occurrence=1),)),
    Mutant("cg_stale_residual", "conjugate gradient never updates its residual",
           (Edit(CG, "residual -= alpha * A_dot_p", "residual = residual"),)),
    # --- bugs: the advantages -------------------------------------------------------------
    Mutant("advantages_sign_flipped", "advantages' sign flipped",
           (Edit(TRAIN, "advantages = rollout_data.advantages\n",
                 "advantages = -rollout_data.advantages\n"),)),
    Mutant("advantages_not_normalized", "advantages not standardized", (
        Edit(TRAIN, "if self.normalize_advantage:", "if False:"),)),
    # (a bug in training; the step protocol's batches are standardized already, so without
    # sb3's standardization the gradient is only scaled by sqrt(N / (N - 1)), which the natural
    # step undoes up to CG's random start: the step claims are not expected to see it)
    # --- equivalent in the setting the suite measures --------------------------------------
    Mutant("actor_grads_not_cleared_for_critic", "critic step does not clear actor gradients", (
        Edit(TRAIN, "param.grad = None", "pass"),), kind="equivalent",
        why="MlpPolicy's actor and critic share no parameters (FlattenExtractor has none), so "
            "the value loss gives the actor's parameters no gradient and Adam skips them."),
    # --- false-alarm probes: behaviour-preserving edits ------------------------------------
    Mutant("probe_rename", "rename a local variable", (
        Edit(TRAIN, "line_search_backtrack_coeff", "step_fraction", count=None),), kind="probe",
        why="a consistent rename of a local variable"),
    Mutant("probe_reorder", "compute the KL before the surrogate in the line search", (
        Edit(TRAIN, "ratio = th.exp(log_prob - rollout_data.old_log_prob)\n"
                    "                    new_policy_objective = (advantages * ratio).mean()\n",
             ""),
        Edit(TRAIN, "kl_div = kl_divergence(distribution, old_distribution).mean()\n\n"
                    "                    # Constraint",
             "kl_div = kl_divergence(distribution, old_distribution).mean()\n"
             "                    ratio = th.exp(log_prob - rollout_data.old_log_prob)\n"
             "                    new_policy_objective = (advantages * ratio).mean()\n\n"
             "                    # Constraint")), kind="probe",
        why="the surrogate and the KL of a candidate are computed from the same distribution "
            "and neither reads the other"),
    Mutant("probe_noop", "an extra no-op statement (a redundant zero_grad before the critic)", (
        Edit(TRAIN, "        # Critic update\n",
             "        self.policy.optimizer.zero_grad()\n        # Critic update\n"),),
        kind="probe", why="the critic loop zeroes the gradients before each backward pass"),
)
