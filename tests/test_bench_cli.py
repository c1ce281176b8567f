"""`trpo-claims bench` (claims.cli.bench): keys, rates and shares of a tiny run; the table and
JSON."""

import argparse
import json

import pytest

from claims.cli import bench

TINY = {"env_id": "CartPole-v1", "steps": 600, "steps_per_iter": 300, "seed": 0,
        "raw_env_steps": 500}
KEYS = {"config", "machine", "versions", "load_average", "torch_default_threads", "raw_env",
        "unwrapped_env", "raw_mujoco", "trpo_ref", "sb3", "sb3_note", "ratios", "targets", "meets",
        "cpu_ratios"}


@pytest.fixture(scope="module")
def tiny_result():
    return bench.bench(**TINY, include_sb3=False)


def _parse(argv):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_tiny_run_has_the_documented_keys(tiny_result):
    assert set(tiny_result) == KEYS
    assert tiny_result["sb3"] is None and "include_sb3=False" in tiny_result["sb3_note"]
    assert set(tiny_result["ratios"]) == set(bench.TARGETS) == set(tiny_result["meets"])
    assert tiny_result["machine"]["cpu_model"]
    assert tiny_result["versions"]["torch"] != "not installed"


def test_tiny_run_rates_are_positive_and_shares_are_fractions(tiny_result):
    ours = tiny_result["trpo_ref"]
    assert tiny_result["raw_env"]["steps_per_s"] > 0 and ours["steps_per_s"] > 0
    assert ours["steps"] >= TINY["steps"] and ours["iterations"] == 2  # whole episodes: >= 300
    shares = ["rollout_share", "advantages_share", "policy_update_share", "value_fit_share",
              "update_share", "setup_share"]
    for name in shares:
        assert 0.0 <= ours[name] <= 1.0, name
    assert ours["update_share"] == pytest.approx(
        ours["policy_update_share"] + ours["value_fit_share"])
    phases = ["rollout_share", "advantages_share", "policy_update_share", "value_fit_share"]
    assert sum(ours[name] for name in phases) <= 1.0 + 1e-9
    ratios = tiny_result["ratios"]
    assert ratios["trpo_ref_over_sb3"] is None and tiny_result["meets"]["trpo_ref_over_sb3"] is None
    assert ratios["trpo_ref_over_raw_env"] == pytest.approx(
        ours["steps_per_s"] / tiny_result["raw_env"]["steps_per_s"])
    assert ratios["update_share"] == ours["update_share"]


def test_physical_limits_unwrapped_and_bare_mujoco(tiny_result):
    """CartPole is no MuJoCo env (no bare simulator rate); InvertedPendulum's bare mj_step
    rate counts env steps of frame_skip simulator steps each."""
    assert tiny_result["raw_mujoco"] is None
    assert tiny_result["unwrapped_env"]["steps_per_s"] > 0
    bare = bench.raw_mujoco_rate("InvertedPendulum-v5", 300, 0)
    frame_skip = bench.gym.make("InvertedPendulum-v5").unwrapped.frame_skip
    assert bare["steps"] == 300 and bare["mj_steps"] == 300 * frame_skip
    assert bare["steps_per_s"] > 0
    assert bench.unwrapped_env_rate("InvertedPendulum-v5", 300, 0)["steps_per_s"] > 0


def test_cpu_ratios_divide_the_cpu_time_rates(tiny_result):
    ours = tiny_result["trpo_ref"]
    assert ours["cpu_seconds"] > 0 and ours["steps_per_cpu_s"] == pytest.approx(
        ours["steps"] / ours["cpu_seconds"])
    cpu = tiny_result["cpu_ratios"]
    assert cpu["trpo_ref_over_raw_env"] == pytest.approx(
        ours["steps_per_cpu_s"] / tiny_result["raw_env"]["steps_per_cpu_s"])
    assert cpu["trpo_ref_over_bare_mujoco"] is None and cpu["trpo_ref_over_sb3"] is None


def test_time_shares_by_hand():
    history = [
        {"time/iteration_s": 1.0, "time/rollout_s": 0.6, "time/advantages_s": 0.1,
         "time/update_s": 0.2, "time/value_fit_s": 0.1},
        {"time/iteration_s": 3.0, "time/rollout_s": 2.4, "time/advantages_s": 0.1,
         "time/update_s": 0.3, "time/value_fit_s": 0.2},
    ]
    shares = bench.time_shares(history)
    assert shares["rollout_share"] == pytest.approx(3.0 / 4.0)
    assert shares["update_share"] == pytest.approx(0.8 / 4.0)
    assert shares["value_fit_share"] == pytest.approx(0.3 / 4.0)


@pytest.mark.parametrize(
    "measured, expected",
    [
        ({"trpo_ref_over_sb3": 3.0, "trpo_ref_over_raw_env": 0.5, "update_share": 0.15},
         {"trpo_ref_over_sb3": True, "trpo_ref_over_raw_env": True, "update_share": True}),
        ({"trpo_ref_over_sb3": 2.9, "trpo_ref_over_raw_env": 0.49, "update_share": 0.16},
         {"trpo_ref_over_sb3": False, "trpo_ref_over_raw_env": False, "update_share": False}),
        ({"trpo_ref_over_sb3": None, "trpo_ref_over_raw_env": 0.9, "update_share": 0.05},
         {"trpo_ref_over_sb3": None, "trpo_ref_over_raw_env": True, "update_share": True}),
    ],
)
def test_meets_targets_compares_in_the_right_direction(measured, expected):
    assert bench.meets_targets(measured) == expected


def test_sb3_settings_match_the_reference_defaults():
    from trpo_ref.deep.trpo import TRPOConfig

    ref, settings = TRPOConfig(), bench.sb3_settings(5_000, seed=3)
    assert settings["n_steps"] == 5_000 and settings["seed"] == 3
    assert (settings["batch_size"], settings["n_critic_updates"]) == (ref.vf_minibatch,
                                                                      ref.vf_epochs)
    assert (settings["target_kl"], settings["cg_max_steps"], settings["gae_lambda"]) == (
        ref.delta, ref.cg_iters, ref.lam)


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--env", "CartPole-v1", "--steps", "300", "--steps-per-iter", "300",
            "--raw-env-steps", "200", "--no-sb3", "--json", str(out)]
    assert bench.handle(_parse(argv)) == 0
    printed = capsys.readouterr().out
    for name, target in bench.TARGETS.items():
        assert name in printed and f"{target:g}" in printed
    assert "skipped on request" in printed
    saved = json.loads(out.read_text())
    assert set(saved) == KEYS and saved["trpo_ref"]["steps_per_s"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [(["--env", "NoSuchEnv-v0", "--no-sb3"], "NoSuchEnv-v0"),
     (["--steps", "0", "--no-sb3"], "--steps must be >= 1")],
)
def test_cli_bad_input_exits_2(argv, message, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.handle(_parse([*argv, "--json", str(out)])) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_sb3_path_on_a_tiny_budget():
    pytest.importorskip("sb3_contrib")
    result = bench.bench(**TINY, include_sb3=True)
    sb3 = result["sb3"]
    assert result["sb3_note"] is None
    assert sb3["steps"] == TINY["steps"] and sb3["steps_per_s"] > 0
    assert 0.0 <= sb3["rollout_share"] <= 1.0
    assert result["ratios"]["trpo_ref_over_sb3"] == pytest.approx(
        result["trpo_ref"]["steps_per_s"] / sb3["steps_per_s"])
    assert isinstance(result["meets"]["trpo_ref_over_sb3"], bool)
