"""Audit tools built on the catalogue: the fork check (the implementation claims on every
seeded-bug fork of trpo_ref) and source-level mutants of installed TRPO libraries."""
