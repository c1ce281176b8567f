"""Mutants of tianshou's TRPO update (``tianshou.algorithm.modelfree.trpo.TRPO._update_with_batch``
and the Fisher-vector product and conjugate gradient it inherits from ``NPG``), built from the
installed source at run time (:mod:`claims.audit.mutants`).

Written against tianshou 2.0.1; an edit whose text a later version lacks makes its mutant "not
applicable" in the detection table.
"""

from __future__ import annotations

from claims.audit.mutants import Edit, Mutant

UPDATE = "tianshou.algorithm.modelfree.trpo:TRPO._update_with_batch"
MVP = "tianshou.algorithm.modelfree.npg:NPG._MVP"
CG = "tianshou.algorithm.modelfree.npg:NPG._conjugate_gradients"

ACCEPT = "if kl < self.max_kl and new_actor_loss < actor_loss:"
KL_GRAD = "kl = kl_divergence(old_dist, dist).mean()"
KL_SEARCH = "kl = kl_divergence(old_dist, new_dist).mean()"
PAD = " " * 24  # the line search's indentation in trpo.py

MUTANTS: tuple[Mutant, ...] = (
    # --- bugs: the line search -----------------------------------------------------------
    Mutant("no_kl_test", "line search: KL test removed (accepts any step that improves L)",
           (Edit(UPDATE, ACCEPT, "if new_actor_loss < actor_loss:"),)),
    Mutant("kl_test_loosened", "line search: KL test loosened to 1.5 delta",
           (Edit(UPDATE, ACCEPT, "if kl < 1.5 * self.max_kl and new_actor_loss < actor_loss:"),)),
    Mutant("no_improvement_test", "line search: surrogate-improvement test removed",
           (Edit(UPDATE, ACCEPT, "if kl < self.max_kl:"),)),
    Mutant("no_restore_on_failure", "line search: a failed search keeps the last candidate",
           (Edit(UPDATE, "self._set_from_flat_params(self.policy.actor, flat_params)",
                 "pass"),)),
    Mutant("never_backtracks", "line search: never shrinks the step (full step or nothing)",
           (Edit(UPDATE, "step_size = step_size * self.backtrack_coeff",
                 "step_size = step_size"),)),
    Mutant("accepts_first_candidate", "line search: the full step is accepted untested",
           (Edit(UPDATE, ACCEPT, "if True:"),)),
    # --- bugs: the step size ---------------------------------------------------------------
    Mutant("step_scale_without_factor_2", "step scale sqrt(delta / sAs), not sqrt(2 delta / sAs)",
           (Edit(UPDATE, "* self.max_kl\n", "* self.max_kl / 2\n"),)),
    Mutant("step_scale_without_sqrt", "step scale 2 delta / sAs, the square root forgotten",
           (Edit(UPDATE, "step_size = torch.sqrt(", "step_size = torch.abs("),)),  # abs: a no-op
    # --- bugs: the direction (CG and the Fisher) -------------------------------------------
    Mutant("one_cg_iteration", "conjugate gradient cut to 1 iteration",
           (Edit(UPDATE, "nsteps=10)", "nsteps=1)"),)),
    Mutant("huge_fvp_damping", "Fisher-vector product damping x1000 (0.1 -> 100)",
           (Edit(MVP, "v * self._damping", "v * self._damping * 1000"),)),
    Mutant("fisher_of_attached_kl", "Fisher from KL(pi || pi) with both sides attached (it is "
           "identically 0, so the 'Fisher' is the damping alone)",
           (Edit(UPDATE, KL_GRAD, "kl = kl_divergence(dist, dist).mean()"),)),
    Mutant("cg_stale_residual", "conjugate gradient never updates its residual",
           (Edit(CG, "r -= alpha * z", "r = r"),)),
    # --- bugs: the KL ------------------------------------------------------------------------
    Mutant("kl_reversed", "KL(new || old) instead of KL(old || new), in the Fisher and the line "
           "search", (Edit(UPDATE, KL_GRAD, "kl = kl_divergence(dist, old_dist).mean()"),
                      Edit(UPDATE, KL_SEARCH, "kl = kl_divergence(new_dist, old_dist).mean()"))),
    Mutant("kl_mean_over_action_dims", "Gaussian KL averaged over action dimensions instead of "
           "summed (sb3-contrib's choice), in the Fisher and the line search", (
        Edit(UPDATE, KL_GRAD, 'kl = kl_divergence(getattr(old_dist, "base_dist", old_dist), '
                              'getattr(dist, "base_dist", dist)).mean()'),
        Edit(UPDATE, KL_SEARCH, 'kl = kl_divergence(getattr(old_dist, "base_dist", old_dist), '
                                'getattr(new_dist, "base_dist", new_dist)).mean()'))),
    # --- bugs: the advantages and the batch ------------------------------------------------
    Mutant("advantages_sign_flipped", "advantages' sign flipped",
           (Edit(UPDATE, "* minibatch.adv)", "* -minibatch.adv)", count=2),)),
    Mutant("per_minibatch_trust_region", "the batch split into 4 minibatches, each given its "
           "own trust-region step", (Edit(UPDATE, "split_batch_size = batch_size or -1",
                                          "split_batch_size = -(-len(batch) // 4)"),)),
    # --- equivalent ------------------------------------------------------------------------
    Mutant("ratio_cast_removed", "the ratio's .float() cast dropped", (
        Edit(UPDATE, ".exp().float()", ".exp()", count=2),), kind="equivalent",
        why="the policy's log-probabilities are float32 already, so .float() returns the same "
            "tensor"),
    # --- false-alarm probes: behaviour-preserving edits ------------------------------------
    Mutant("probe_rename", "rename a local variable", (
        Edit(UPDATE, "new_dratio", "candidate_ratio", count=None),), kind="probe",
        why="a consistent rename of a local variable"),
    Mutant("probe_reorder", "compute the KL before the surrogate in the line search", (
        Edit(UPDATE, f"\n{PAD}{KL_SEARCH}\n", "\n"),
        Edit(UPDATE, "new_dist = self.policy(minibatch).dist\n",
             f"new_dist = self.policy(minibatch).dist\n{PAD}{KL_SEARCH}\n")), kind="probe",
        why="the candidate's KL and surrogate are computed from the same distribution and "
            "neither reads the other (the KL draws no random numbers)"),
    Mutant("probe_operands_swapped", "candidate parameters as step * direction + old", (
        Edit(UPDATE, "new_flat_params = flat_params + step_size * search_direction",
             "new_flat_params = search_direction * step_size + flat_params"),), kind="probe",
        why="IEEE-754 addition and multiplication are commutative, bit for bit"),
    Mutant("probe_noop", "an extra no-op statement", (
        Edit(UPDATE, "actor_losses, vf_losses, step_sizes, kls = [], [], [], []\n",
             "actor_losses, vf_losses, step_sizes, kls = [], [], [], []\n"
             "        actor_losses = list(actor_losses)\n"),), kind="probe",
        why="copies an empty list into a new empty list"),
)
