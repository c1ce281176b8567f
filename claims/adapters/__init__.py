"""Adapters: TRPO implementations seen through :mod:`claims.impl`'s protocol."""
