"""The framework: what a claim is (core), where claims are found (registry), how they are run,
judged and reported (runner, report, compare), the job cache (jobs), statistics, serialization,
the machine fingerprint, and the implementation protocol (impl). It never imports the claim
catalogue, the faults, the audit tools or the command line (tests/test_claims_structure.py)."""
