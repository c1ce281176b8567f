"""Deep-RL half of the reference implementation (PyTorch, CPU): TRPO and its baselines.

- :mod:`~trpo_ref.deep.policies`: DiagGaussianMLP, CategoricalMLP (analytic KL(old || new)).
- :mod:`~trpo_ref.deep.step`: flat params, Fisher-vector products, CG, beta, line search and
  :func:`~trpo_ref.deep.step.update` (trpo | npg | max-kl | empirical-fim | pg).
- :mod:`~trpo_ref.deep.gae`, :mod:`~trpo_ref.deep.value`, :mod:`~trpo_ref.deep.normalize`:
  advantages, the baseline fit, observation normalization.
- :mod:`~trpo_ref.deep.trpo`: TRPOConfig and train(), the single-path loop on gymnasium.
"""
