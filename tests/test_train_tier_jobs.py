"""scripts/train_tier_jobs.py: trains a tier's whole plan into a cache, and a second run resumes
(reads everything, trains nothing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from claims.empirical import protocol
from claims.jobs import Execution, JobCache, execution

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_tier_jobs.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_tier_jobs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trains_every_stage_then_resumes_from_the_cache(tmp_path, monkeypatch, capsys):
    tiny = protocol.Budget(steps={"CartPole-v1": 1_000}, seeds=(0,), control_seeds=(0,),
                           sweep_seeds=(100,), sweep_fraction=1.0, delta_seeds=(0,))
    monkeypatch.setitem(protocol.BUDGETS, "quick", tiny)
    script = load_script()
    assert script.main(["--tier", "quick", "--cache", str(tmp_path), "--jobs", "2"]) == 0
    with execution(Execution(cache=JobCache(tmp_path), train=False)):  # the sweep is cached
        planned = [job for stage in protocol.stages("quick") for job in stage()]
    assert len(list(tmp_path.glob("*.json"))) == len({repr(j.spec()) for j in planned})
    capsys.readouterr()
    assert script.main(["--tier", "quick", "--cache", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "(cached)" in err and " s; elapsed" not in err  # nothing ran the second time
