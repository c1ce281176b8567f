"""`trpo-claims climb` through claims.cli.climb's add_arguments / handle."""

import argparse
import json

import pytest

from claims.cli.climb import add_arguments, handle
from trpo_ref.tabular.climb import PRESETS

pytestmark = pytest.mark.quick


def climb(argv, capsys):
    parser = argparse.ArgumentParser(prog="trpo-claims climb")
    add_arguments(parser)
    code = handle(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", [p.name for p in PRESETS] + [p.slug for p in PRESETS])
def test_every_preset_name_and_slug_runs(name, capsys, tmp_path):
    png = tmp_path / "c.png"
    code, out, _ = climb(["--preset", name, "--rounds", "3", "--out", str(png)], capsys)
    assert code == 0 and png.stat().st_size > 0
    assert f"wrote {png}" in out


def test_table_and_event_log(capsys, tmp_path):
    code, out, _ = climb(["--preset", "overshoot", "--rounds", "6", "--switch-at", "4", "--to",
                          "trust-region", "--out", str(tmp_path / "o.png")], capsys)
    assert code == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("round"))
    assert all(col in lines[header] for col in
               ("rule", "true %", "predicted %", "step KL", "delta", "backtracks"))
    rows = [line.split() for line in lines[header + 1: header + 8]]
    assert [r[0] for r in rows] == ["0", "1", "2", "3", "4", "5", "6"]
    assert rows[0][1] == "start" and rows[0][2] == "-39.5"  # the seed's scale: 100 eta / eta*
    assert [r[1] for r in rows[1:]] == ["no-trust-region"] * 3 + ["trust-region"] * 3
    assert "events (" in out
    assert "switch        no-trust-region -> trust-region" in out


def test_default_output_path_is_named_after_the_preset(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = climb(["--preset", "Trust region"], capsys)
    assert code == 0 and (tmp_path / "climb-trust-region.png").exists()


def test_json_output(capsys, tmp_path):
    png = tmp_path / "j.png"
    code, out, err = climb(["--preset", "too-wide", "--rounds", "4", "--delta", "0.1",
                            "--estimate-error", "0.2", "--json", "--out", str(png)], capsys)
    assert code == 0
    payload = json.loads(out)
    assert payload["settings"]["delta"] == 0.1 and payload["settings"]["estimate_error"] == 0.2
    assert len(payload["percent"]) == 4 and payload["figure"] == str(png)
    assert payload["start_percent"] == pytest.approx(-39.53, abs=0.01)
    assert f"wrote {png}" in err


def test_json_is_strict_and_kl_finite_where_probabilities_underflow(capsys, tmp_path):
    # The overshoot preset's big steps drive probabilities to exactly 0 (probability-form KL
    # +inf); the JSON must parse under a strict parser and every KL must be finite.
    code, out, _ = climb(["--preset", "overshoot", "--json", "--out", str(tmp_path / "o.png")],
                         capsys)
    assert code == 0 and "Infinity" not in out and "NaN" not in out
    payload = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert all(isinstance(k, float) and k >= 0 for k in payload["kl_mean"])
    for event in payload["events"]:
        assert "+0.0 points" not in event["message"] and "-0.0 points" not in event["message"]


def test_default_out_names_every_changed_setting(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    climb(["--preset", "overshoot", "--rounds", "3"], capsys)
    climb(["--preset", "overshoot", "--rounds", "3", "--switch-at", "2", "--to", "trust-region"],
          capsys)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "climb-overshoot-rounds3-switch2-trust-region.png", "climb-overshoot-rounds3.png"]


def test_preset_is_required_without_html(capsys):
    code, out, err = climb([], capsys)
    assert code == 2 and out == "" and "--preset is required" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--html", "page.txt"], "--html must name a .html file"),
        (["--html", "page.html", "--preset", "nope"], "unknown preset 'nope'"),
        (["--html", "page.html", "--delta", "0.1"], "--delta set a single run"),
    ],
)
def test_html_usage_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = climb(argv, capsys)
    assert out == ""
    assert code == 2 and message in err and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "nope"], "unknown preset 'nope'; valid presets"),
        (["--preset", "crawl", "--rounds", "0"], "--rounds must be >= 1"),
        (["--preset", "crawl", "--delta", "0"], "--delta must be finite and > 0"),
        (["--preset", "crawl", "--delta", "-1"], "--delta must be finite and > 0"),
        (["--preset", "crawl", "--delta", "nan"], "--delta must be finite and > 0"),
        (["--preset", "crawl", "--switch-at", "61", "--to", "trust-region"],
         "--switch-at must be in 1..60"),
        (["--preset", "crawl", "--rounds", "5", "--switch-at", "0", "--to", "trust-region"],
         "--switch-at must be in 1..5"),
        (["--preset", "crawl", "--switch-at", "3"], "--switch-at and --to go together"),
        (["--preset", "crawl", "--switch-at", "3", "--to", "adam"], "unknown update rule"),
        (["--preset", "crawl", "--estimate-error", "-0.5"], "--estimate-error must be"),
        (["--preset", "crawl", "--out", "plot.pdf"], "--out must name a .png file"),
    ],
)
def test_usage_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = climb(argv, capsys)
    assert code == 2 and out == ""
    assert message in err and err.startswith("trpo-claims climb: error:")
    assert err.count("\n") == 1  # one line: no usage block in front of a bad value
    assert not list(tmp_path.glob("*.png"))


def test_unknown_preset_lists_every_valid_name(capsys):
    _, _, err = climb(["--preset", "nope"], capsys)
    for p in PRESETS:
        assert p.name in err and p.slug in err


def test_html_writes_the_explorer(capsys, tmp_path, monkeypatch):
    import claims.catalogue.climb.explorer as explorer

    small = explorer.write_explorer

    def write_small(path, **kwargs):  # the real page takes minutes: a 2-round grid of one knob
        return small(path, rounds=2, deltas=(0.02,), errors=(0.05,), **kwargs)

    monkeypatch.setattr(explorer, "write_explorer", write_small)
    page = tmp_path / "climb.html"
    code, out, err = climb(["--html", str(page), "--preset", "too-wide"], capsys)
    assert code == 0 and f"wrote {page}" in out and "computing" in err
    text = page.read_text(encoding="utf-8")
    assert '"start_preset":"too-wide"' in text and "<svg id=\"chart\"" in text
