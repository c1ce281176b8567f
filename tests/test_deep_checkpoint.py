"""Checkpoints: resume gives the uninterrupted run's numbers bit for bit; bad checkpoints, bad
configs and NaN parameters raise clear errors before any damage; writes are atomic."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest
import torch

import trpo_ref.deep.trpo as trpo_module
from claims.cli.main import main
from trpo_ref.deep.checkpoint import (
    CHECKPOINT_NAME,
    RESUMABLE_FIELDS,
    incompatible_fields,
    load_checkpoint,
    save_checkpoint,
)
from trpo_ref.deep.trpo import NonFiniteParametersError, TRPOConfig, train

pytestmark = pytest.mark.quick

# Small batches: about 10 iterations of a few episodes each, every batch ending at an episode end.
CARTPOLE = TRPOConfig(env_id="CartPole-v1", total_steps=2_000, steps_per_iter=200, seed=5,
                      checkpoint_every=3)


def logged(out_dir):
    """The metrics log without wall-clock times (the only numbers that may differ)."""
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]


def assert_same_checkpoint(a, b):
    """Equal nested checkpoint contents; tensors compared bit for bit."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_checkpoint(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_checkpoint(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    history = train(CARTPOLE, out_dir=out)
    return out, history


def test_a_run_checkpoints_periodically_and_at_the_end(uninterrupted, tmp_path):
    out, history = uninterrupted
    assert len(history) >= 7
    final = load_checkpoint(out / CHECKPOINT_NAME)
    assert final["iteration"] == len(history)
    assert final["total_steps"] == history[-1]["global/steps"]
    assert final["config"] == dataclasses.asdict(CARTPOLE)
    seen = []
    train(CARTPOLE, out_dir=tmp_path,
          progress=lambda m: seen.append(load_checkpoint(tmp_path / CHECKPOINT_NAME)["iteration"]
                                         if (tmp_path / CHECKPOINT_NAME).exists() else 0))
    # the checkpoint is written before progress is called, every checkpoint_every iterations
    assert seen == [3 * (i // 3) for i in range(1, len(history) + 1)]


@pytest.mark.parametrize("first_steps", [200, 900])
def test_stop_and_resume_equals_the_uninterrupted_run(first_steps, uninterrupted, tmp_path):
    out, history = uninterrupted
    first = train(dataclasses.replace(CARTPOLE, total_steps=first_steps), out_dir=tmp_path)
    resumed = train(CARTPOLE, out_dir=tmp_path, resume=True)
    assert len(first) + len(resumed) == len(history)
    assert resumed[0]["global/iteration"] == len(first) + 1
    assert logged(tmp_path) == logged(out)
    assert_same_checkpoint(load_checkpoint(tmp_path / CHECKPOINT_NAME),
                           load_checkpoint(out / CHECKPOINT_NAME))


def test_stop_and_resume_equals_the_uninterrupted_run_on_mujoco(tmp_path):
    """Gaussian policy, clipped Box actions, a MuJoCo env reset from its restored generator."""
    config = TRPOConfig(env_id="InvertedPendulum-v5", total_steps=1_200, steps_per_iter=300,
                        network="paper", hidden=8, seed=1, checkpoint_every=0)
    train(config, out_dir=tmp_path / "whole")
    train(dataclasses.replace(config, total_steps=500), out_dir=tmp_path / "parts")
    train(config, out_dir=tmp_path / "parts", resume=True)
    assert len(logged(tmp_path / "whole")) >= 4
    assert logged(tmp_path / "parts") == logged(tmp_path / "whole")
    assert_same_checkpoint(load_checkpoint(tmp_path / "parts" / CHECKPOINT_NAME),
                           load_checkpoint(tmp_path / "whole" / CHECKPOINT_NAME))


def test_resume_after_a_crash_drops_lines_logged_after_the_checkpoint(uninterrupted, tmp_path):
    out, _ = uninterrupted

    def crash_at_iteration_5(metrics):
        if metrics["global/iteration"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(CARTPOLE, out_dir=tmp_path, progress=crash_at_iteration_5)
    assert len(logged(tmp_path)) == 5
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["iteration"] == 3
    train(CARTPOLE, out_dir=tmp_path, resume=True)
    assert logged(tmp_path) == logged(out)
    assert_same_checkpoint(load_checkpoint(tmp_path / CHECKPOINT_NAME),
                           load_checkpoint(out / CHECKPOINT_NAME))


def test_resuming_a_finished_run_runs_nothing(uninterrupted, tmp_path):
    out, _ = uninterrupted
    train(CARTPOLE, out_dir=tmp_path)
    assert train(CARTPOLE, out_dir=tmp_path, resume=True) == []
    assert logged(tmp_path) == logged(out)


# --- bad input -----------------------------------------------------------------------------------

def snapshot(out_dir):
    return {p.name: p.read_bytes() for p in sorted(out_dir.iterdir())}


@pytest.fixture
def short_run(tmp_path):
    config = dataclasses.replace(CARTPOLE, total_steps=400)
    train(config, out_dir=tmp_path)
    return config, tmp_path


@pytest.mark.parametrize("changes", [
    {"delta": 0.02}, {"seed": 6}, {"env_id": "Acrobot-v1"}, {"algo": "npg"},
    {"network": "paper", "hidden": 8}, {"normalize_obs": False, "vf_lr": 3e-4},
])
def test_incompatible_config_raises_naming_the_fields_before_writing(changes, short_run):
    config, out = short_run
    before = snapshot(out)
    with pytest.raises(ValueError, match="incompatible config") as error:
        train(dataclasses.replace(config, **changes), out_dir=out, resume=True)
    for field in changes:
        assert field in str(error.value)
    assert snapshot(out) == before


def test_only_the_resumable_fields_may_differ():
    saved = dataclasses.asdict(CARTPOLE)
    for field in dataclasses.fields(TRPOConfig):
        other = {**saved, field.name: "changed"}
        expected = [] if field.name in RESUMABLE_FIELDS else [field.name]
        assert incompatible_fields(saved, other) == expected
    assert incompatible_fields({**saved, "retired_field": 1}, saved) == ["retired_field"]
    assert RESUMABLE_FIELDS <= {f.name for f in dataclasses.fields(TRPOConfig)}


def test_a_checkpoint_from_before_a_field_existed_resumes_at_its_default(short_run):
    """Checkpoints written before the vine fields existed lack them; they computed as the
    defaults do, so a run at the defaults resumes and one that changes such a field is refused."""
    config, out = short_run
    path = out / CHECKPOINT_NAME
    checkpoint = torch.load(path, weights_only=False)
    for name in ("sampling", "vine_states", "vine_actions", "vine_horizon", "vine_bootstrap"):
        del checkpoint["config"][name]
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=r"sampling \(checkpoint: 'single-path', now: 'vine'\)"):
        train(dataclasses.replace(config, sampling="vine", vine_states=50), out_dir=out,
              resume=True)
    assert train(dataclasses.replace(config, total_steps=600), out_dir=out, resume=True)


def test_missing_checkpoint_raises_file_not_found_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / CHECKPOINT_NAME))):
        train(CARTPOLE, out_dir=tmp_path, resume=True)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="out_dir"):
        train(CARTPOLE, resume=True)


@pytest.mark.parametrize("corruption", ["garbage", "truncated", "empty", "not_a_checkpoint"])
def test_corrupt_checkpoint_raises_value_error_naming_the_path(corruption, short_run):
    config, out = short_run
    path = out / CHECKPOINT_NAME
    data = path.read_bytes()
    if corruption == "not_a_checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes({"garbage": b"not a checkpoint" * 10, "truncated": data[: len(data) // 2],
                          "empty": b""}[corruption])
    before = snapshot(out)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        train(config, out_dir=out, resume=True)
    assert snapshot(out) == before


def test_metrics_log_shorter_than_the_checkpoint_raises(short_run):
    config, out = short_run
    log = out / "metrics.jsonl"
    log.write_text(log.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match=r"metrics log .* has 1 lines"):
        train(config, out_dir=out, resume=True)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(short_run):
    _, out = short_run
    path = out / CHECKPOINT_NAME
    good = path.read_bytes()
    # a tensor is written first, then pickling the lambda fails mid-file
    with pytest.raises(Exception, match=r"pickle|lambda"):
        save_checkpoint(path, {"policy": torch.ones(100_000), "broken": lambda: None})
    assert path.read_bytes() == good
    assert load_checkpoint(path)["iteration"] >= 1
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT_NAME, "config.json",
                                                    "metrics.jsonl"]


@pytest.mark.parametrize("module", ["policy", "value"])
def test_non_finite_parameters_stop_the_run_naming_the_iteration(module, monkeypatch, tmp_path):
    """Fault injection: after the third policy update, poison one network's parameters in a way
    the update's own guards cannot see (the value fit restores its pre-fit parameters, so NaN
    placed before the fit survives it)."""
    real_update, calls = trpo_module.update, []

    def faulty_update(policy, batch, **kwargs):
        metrics = real_update(policy, batch, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            target = policy if module == "policy" else faulty_update.value_fn
            with torch.no_grad():
                next(target.parameters()).view(-1)[0] = math.nan
        return metrics

    real_value_mlp = trpo_module.ValueMLP

    def recording_value_mlp(*args, **kwargs):
        faulty_update.value_fn = real_value_mlp(*args, **kwargs)
        return faulty_update.value_fn

    monkeypatch.setattr(trpo_module, "update", faulty_update)
    monkeypatch.setattr(trpo_module, "ValueMLP", recording_value_mlp)
    config = dataclasses.replace(CARTPOLE, checkpoint_every=1)
    with pytest.raises(NonFiniteParametersError, match=f"iteration 3: non-finite {module}"):
        train(config, out_dir=tmp_path)
    assert len(logged(tmp_path)) == 2
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert checkpoint["iteration"] == 2
    for name in ("policy", "value"):
        assert all(torch.isfinite(t).all() for t in checkpoint[name].values())


# --- the command line ----------------------------------------------------------------------------

def test_cli_resume_continues_the_run_and_refuses_an_incompatible_one(tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["train", "--env", "CartPole-v1", "--steps-per-iter", "200", "--seed", "2", "--quiet",
            "--out", out]
    assert main([*argv, "--steps", "400"]) == 0
    before = logged(tmp_path / "run")
    assert main([*argv, "--steps", "800", "--resume"]) == 0
    after = logged(tmp_path / "run")
    assert after[: len(before)] == before and after[-1]["global/steps"] >= 800
    assert [row["global/iteration"] for row in after] == list(range(1, len(after) + 1))
    capsys.readouterr()
    assert main([*argv, "--steps", "1200", "--delta", "0.05", "--resume"]) == 2
    assert "delta" in capsys.readouterr().err
    assert main([*argv[:-1], str(tmp_path / "none"), "--resume"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err


def test_negative_checkpoint_interval_raises_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every must be >= 0"):
        train(dataclasses.replace(CARTPOLE, checkpoint_every=-1), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
