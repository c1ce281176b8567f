"""Deep-RL half of the reference implementation (PyTorch, CPU): TRPO and its baselines.

- :mod:`~trpo_ref.deep.policies`: DiagGaussianMLP, CategoricalMLP, AtariCategoricalCNN (the
  paper's Atari network) and ValueCNN (analytic KL(old || new)).
- :mod:`~trpo_ref.deep.step`: flat params, Fisher-vector products, CG, beta, line search and
  :func:`~trpo_ref.deep.step.update` (trpo | npg | max-kl | empirical-fim | pg), made of the
  pieces of :class:`~trpo_ref.deep.step.UpdateStrategies` (the paper's by default).
- :mod:`~trpo_ref.deep.rollout`: whole-episode rollouts (step 1 of an iteration).
- :mod:`~trpo_ref.deep.gae`, :mod:`~trpo_ref.deep.value`, :mod:`~trpo_ref.deep.normalize`:
  advantages, the baseline fit, observation normalization.
- :mod:`~trpo_ref.deep.atari`: ALE environments (frame skip, grayscale, 2x2 pooling, stacking).
- :mod:`~trpo_ref.deep.fast_rollout`: numpy per-step sampling with weights copied once per batch.
- :mod:`~trpo_ref.deep.checkpoint`: atomic checkpoints and exact resume.
- :mod:`~trpo_ref.deep.trpo`: TRPOConfig and train(), the loop on gymnasium (single path or vine).
- :mod:`~trpo_ref.deep.vine`: the vine procedure (section 5.2): branch rollouts from restored
  simulator states, K actions per state with common random numbers.
- :mod:`~trpo_ref.deep.derivative_free`: the derivative-free baselines CEM and CMA-ES.
"""
