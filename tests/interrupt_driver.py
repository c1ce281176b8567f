"""A small real run for tests/test_interrupts.py: ``trpo-claims`` (:func:`claims.cli.main.main`,
argv from the command line) with three toy claims in the registry's place, one of which waits for a
signal where ``$HANG`` says:

- ``HANG=claim``: ``toy.hang``'s run() writes its pid to ``$MARKER`` and sleeps;
- ``HANG=training``: ``toy.hang`` plans two training jobs that write their pid to
  ``$MARKER.<seed>`` and sleep (run on the process pool with ``--jobs 2``);
- unset: nothing waits (the rerun that resumes).

``toy.pass`` appends a line to ``$RUNS_LOG`` each time it runs, so a test can see that a resumed
run did not run it again.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from toy_claims import LeakyControlClaim, PassingClaim, ToyClaim

from claims.cli.main import main
from claims.framework import registry
from claims.framework.core import Evidence
from claims.framework.jobs import Job

WAIT_S = 120  # far longer than any test waits: the signal must be what ends it


def hang(marker: str) -> dict[str, Any]:
    """A training job that never finishes on its own."""
    Path(marker).write_text(str(os.getpid()))
    time.sleep(WAIT_S)
    return {"steps": [1]}


class CountedClaim(PassingClaim):
    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        with open(os.environ["RUNS_LOG"], "a") as log:
            log.write(f"{self.id} control={control}\n")
        return super().run(tier, control=control, seed=seed)


class HangingClaim(ToyClaim):
    id = "toy.hang"
    title = "A toy claim that waits for a signal"

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        if os.environ.get("HANG") == "claim":
            Path(os.environ["MARKER"]).write_text(str(os.getpid()))
            time.sleep(WAIT_S)
        return super().run(tier, control=control, seed=seed)

    def jobs(self, tier: str, control: bool) -> list[Job]:
        if os.environ.get("HANG") != "training" or control:
            return []
        return [Job(self.id, "task", "sleep", seed, fn="interrupt_driver:hang",
                    kwargs={"marker": f"{os.environ['MARKER']}.{seed}"}) for seed in (0, 1)]


if __name__ == "__main__":
    registry.CLAIM_MODULES = ()
    registry._REGISTRY = {c.id: c for c in (CountedClaim(), HangingClaim(), LeakyControlClaim())}
    sys.exit(main(sys.argv[1:]))
