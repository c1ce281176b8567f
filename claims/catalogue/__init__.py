"""The claim catalogue: every claim of the paper as a registered
:class:`claims.framework.core.Claim` (theory, climb, step, empirical, implementation), and the
training job function the section-8 claims' trainings run (training_jobs.py)."""
