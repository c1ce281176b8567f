"""Train every job of a tier's empirical claims into a job cache, without judging anything.

    python scripts/train_tier_jobs.py --tier full --jobs 2 --cache reports/full/jobs

Resumable: finished jobs are read from the cache, so killing and restarting loses at most the
jobs in flight. ``trpo-claims run --tier full --cache reports/full/jobs`` then judges the claims
from the same cache. Stages run in order (NPG's Figure 4 runs need the step sweep's result).

``--only TEXT`` (repeatable) trains just the jobs whose label contains one of the texts, e.g.
``--only "Breakout-v5 trpo+flip_advantages" --jobs 1`` for a job that needs the machine's whole
memory. Planning a later stage still reads (or trains) the results it depends on.
"""

from __future__ import annotations

import argparse
import sys
import time

from claims.catalogue.empirical import protocol
from claims.framework.jobs import (
    EXECUTORS,
    Execution,
    JobCache,
    ProgressPrinter,
    execution,
    run_in_context,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="full", choices=list(protocol.BUDGETS))
    parser.add_argument("--cache", required=True, help="job cache directory")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--executor", default="process", choices=EXECUTORS)
    parser.add_argument("--address", default=None, help="Ray cluster address (--executor ray)")
    parser.add_argument("--only", action="append", default=None, metavar="TEXT",
                        help="train only jobs whose label contains TEXT (repeatable), e.g. "
                             "'atari ALE/Pong-v5'")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    settings = Execution(cache=JobCache(args.cache), executor=args.executor,
                         max_workers=args.jobs, address=args.address,
                         progress=ProgressPrinter())  # one counter over every stage
    with execution(settings):
        for number, plan in enumerate(protocol.stages(args.tier), start=1):
            stage = plan()  # planned only now: stage 2 needs stage 1's results
            kept = [job for job in stage if selected(job.label, args.only)]
            shown = f"{len(kept)} of {len(stage)}" if args.only else f"{len(stage)}"
            print(f"stage {number}: {shown} jobs", file=sys.stderr, flush=True)
            run_in_context(kept)
    print(f"done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def selected(label: str, only: list[str] | None) -> bool:
    """Whether a job with this label is trained: always without ``--only``, else when the label
    contains one of its texts."""
    return only is None or any(text in label for text in only)


if __name__ == "__main__":
    raise SystemExit(main())
