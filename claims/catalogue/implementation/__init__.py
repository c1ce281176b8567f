"""Claims any TRPO implementation can be judged on through :mod:`claims.framework.impl`'s protocol:
the suite builds the batches and measures the outcome itself, by the paper's definitions."""
