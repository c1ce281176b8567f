"""scripts/train_tier_jobs.py: trains a tier's whole plan into a cache, and a second run resumes
(reads everything, trains nothing); scripts/replay_jobs.py: audits a cache by rerunning its jobs."""

from __future__ import annotations

import json

from claims.catalogue.empirical import protocol
from claims.framework.jobs import Execution, Job, JobCache, execution, run_in_context


def test_trains_every_stage_then_resumes_from_the_cache(tmp_path, monkeypatch, capsys,
                                                       load_script):
    tiny = protocol.Budget(steps={"CartPole-v1": 1_000}, seeds=(0,), control_seeds=(0,),
                           sweep_seeds=(100,), sweep_fraction=1.0, delta_seeds=(0,))
    monkeypatch.setitem(protocol.BUDGETS, "quick", tiny)
    script = load_script("train_tier_jobs")
    assert script.main(["--tier", "quick", "--cache", str(tmp_path), "--jobs", "2"]) == 0
    with execution(Execution(cache=JobCache(tmp_path), train=False)):  # the sweep is cached
        planned = [job for stage in protocol.stages("quick") for job in stage()]
    assert len(list(tmp_path.glob("*.json"))) == len({repr(j.spec()) for j in planned})
    capsys.readouterr()
    assert script.main(["--tier", "quick", "--cache", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "to train" in err and " s; elapsed" not in err  # nothing ran the second time


def test_replay_script_passes_a_reproduced_cache_and_fails_a_tampered_one(tmp_path, capsys,
                                                                          load_script):
    script = load_script("replay_jobs")
    jobs = [protocol.training("figure4", "CartPole-v1", "trpo", seed, 1_000) for seed in (0, 1)]
    cache = JobCache(tmp_path)
    with execution(Execution(cache=cache)):
        run_in_context(jobs)
    assert script.main([str(tmp_path)]) == 0
    assert "identical" in capsys.readouterr().out
    record = json.loads(cache.path(jobs[1]).read_text())
    record["result"]["returns"][0] += 1.0
    cache.path(jobs[1]).write_text(json.dumps(record))
    assert script.main([str(tmp_path), "--sample", "2"]) == 1
    assert "DIFFERS in returns" in capsys.readouterr().out
    record["code"] = "made by other code"
    cache.path(jobs[1]).write_text(json.dumps(record))
    assert script.main([str(cache.path(jobs[1]))]) == 0
    assert "not replayed" in capsys.readouterr().out


def test_only_trains_the_jobs_whose_label_matches(tmp_path, monkeypatch, capsys,
                                                  load_script):
    tiny = protocol.Budget(steps={"CartPole-v1": 1_000}, seeds=(0, 1), control_seeds=(0,),
                           sweep_seeds=(100,), sweep_fraction=1.0, delta_seeds=(0,))
    monkeypatch.setitem(protocol.BUDGETS, "quick", tiny)
    script = load_script("train_tier_jobs")
    only = "figure4 CartPole-v1 trpo seed 1"
    assert script.main(["--tier", "quick", "--cache", str(tmp_path), "--only", only]) == 0
    err = capsys.readouterr().err
    assert "stage 1: 1 of " in err and "stage 2: 0 of " in err
    # the NPG sweep is trained too: planning stage 2 needs its best step
    labels = {Job(**json.loads(p.read_text())["job"]).label for p in tmp_path.glob("*.json")}
    assert only in labels
    assert not any("seed 0" in label and "figure4" in label for label in labels)
