"""`trpo-claims train`: every config field is an option with its doc; errors exit 2."""

import dataclasses
import json

import pytest

from claims.cli.main import main
from claims.cli.train import _field_docs
from trpo_ref.deep.trpo import TRPOConfig


def test_every_config_field_has_a_one_line_doc():
    docs = _field_docs(TRPOConfig)
    assert {f.name for f in dataclasses.fields(TRPOConfig)} <= set(docs)


def test_help_lists_every_field(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for field in dataclasses.fields(TRPOConfig):
        assert "--" + field.name.replace("_", "-") in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "NoSuchEnv-v0"], "unknown environment id"),
        (["--delta", "0"], "delta must be > 0"),
        (["--algo", "sgd"], "algo must be one of"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(argv, message, tmp_path, capsys):
    assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.quick
def test_short_cartpole_run_writes_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--env", "CartPole-v1", "--steps", "600", "--steps-per-iter", "300"]
    assert main([*argv, "--out", str(out), "--seed", "3"]) == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) >= 2 and lines[-1]["global/steps"] >= 600
    assert "iter    1" in capsys.readouterr().err
