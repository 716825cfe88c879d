"""Every example runs in its --smoke configuration, writes non-blank PNGs of the size it
reports, and ends better than its untrained flow."""

import importlib
import math
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "examples")
EXPECTED_PNGS = {
    "name_density": {"data_vs_samples.png", "log_density.png", "training_curve.png", "warp.png"},
    "planar_energies": {"planar_energies.png"},
    "leaky_relu_coupling": {"intermediate.png", "densities.png", "data_vs_samples.png"},
    "elementwise_and_linear": {"pwl.png", "lu_linear.png"},
    "gallery": {"gallery.png"},
    "conditional_moons": {"conditional_samples.png"},
    "digits": {"samples.png", "reconstructions.png", "interpolations.png", "training_curve.png"},
}
MIN_PIXEL_VARIANCE = 50.0  # grey levels²; a blank or single-colour image has 0


def _import(name):
    if EXAMPLES_DIR not in sys.path:
        sys.path.insert(0, EXAMPLES_DIR)
    return importlib.import_module(name)


CASES = [(name, []) for name in sorted(EXPECTED_PNGS)] + [
    ("name_density", ["--flow", "realnvp", "--batch-norm"]), ("gallery", ["--flow", "realnvp"])]


@pytest.mark.parametrize("name, extra", CASES)
def test_example_smoke(name, extra, tmp_path):
    out = tmp_path / name
    results = _import(name).main(["--smoke", "--verbose", "0", "--out", str(out)] + extra)

    assert set(results["pngs"]) == EXPECTED_PNGS[name]
    for png, info in results["pngs"].items():
        assert os.path.isfile(out / png), png
        image = Image.open(out / png)
        assert image.format == "PNG"
        assert image.size == tuple(info["size"]), png
        assert min(image.size) >= 200, png
        grey = np.asarray(image.convert("L"), np.float64)
        assert grey.var() > MIN_PIXEL_VARIANCE, f"{png} looks blank (variance {grey.var():.1f})"

    pairs = [(key[len("untrained_"):], key) for key in results if key.startswith("untrained_")]
    assert pairs, "an example must report its untrained baseline"
    for trained, untrained in pairs:
        assert math.isfinite(results[trained]), trained
        assert results[trained] < results[untrained], (trained, results[trained],
                                                       results[untrained])


@pytest.mark.parametrize("name", sorted(EXPECTED_PNGS))
def test_help_documents_every_option(name, capsys, monkeypatch):
    module = _import(name)
    common = module._common
    parsers = []

    def recording_parser(*args, **kwargs):
        parsers.append(common_parser(*args, **kwargs))
        return parsers[-1]

    common_parser = common.parser
    monkeypatch.setattr(common, "parser", recording_parser)
    with pytest.raises(SystemExit) as exit_info:
        module.parse(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"The default run takes (about|more than) \d+(\.\d+)? minutes?\b", text), text
    assert "on a 2-core CPU" in text
    (parser,) = parsers
    for action in parser._actions:
        assert action.help, f"{name}: {action.option_strings} has no help text"
        # One default shown at most: ours is appended only when the help states none.
        shown = parser._get_formatter()._expand_help(action)
        assert shown.count("default") <= 1, (action.option_strings, shown)


def test_help_shows_one_default_per_option(capsys):
    module = _import("name_density")
    with pytest.raises(SystemExit):
        module.parse(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--text", "--out", "--smoke", "--batch-norm", "--epochs"):
        assert option in text
    assert "(default: 50)" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_finish_says_figure_in_the_singular(tmp_path, capsys):
    common = _import("_common")
    results = common.Results(str(tmp_path))
    from tfp_flows import plot

    results.png(plot.new_figure(2, 2), "one.png")
    results.finish()
    out = capsys.readouterr().out
    assert "wrote 1 figure to" in out and out.count("\n") == 1


def test_help_shows_the_measured_duration():
    common = _import("_common")
    text = " ".join(common.parser("d", "out", "about 8 minutes",
                                  measured="8 min 25 s").format_help().split())
    assert "The default run takes about 8 minutes on a 2-core CPU (measured: 8 min 25 s" in text
    assert "on 2 CPU cores" in text
    assert "measured" not in " ".join(common.parser("d", "out", "about 1 minute")
                                      .format_help().split())
