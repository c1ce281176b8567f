"""Adapters: TRPO implementations seen through :mod:`claims.framework.impl`'s protocol."""
