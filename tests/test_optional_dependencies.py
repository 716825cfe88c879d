"""Without an optional dependency, the feature that needs it names the extra to install."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# `sys.modules[name] = None` makes `import name` fail as if the package were not installed.
PROGRAM = """
import json, sys
for name in ("sklearn", "matplotlib", "PIL"):
    sys.modules[name] = None
import tfp_flows

def error_of(call):
    try:
        call()
    except ImportError as error:
        return str(error)
    return None

def from_import():
    from tfp_flows import plot  # noqa: F401

print(json.dumps({
    "core": float(tfp_flows.flows.realnvp(2, num_layers=2, network_init="identity", seed=0)
                  .log_prob([[0.0, 0.0]])[0]),
    "digits": error_of(lambda: tfp_flows.digits.load()),
    "plot": error_of(lambda: tfp_flows.plot),
    "from_import": error_of(from_import),
    "text": error_of(lambda: tfp_flows.datasets.text(10, seed=0)),
    "moons": tfp_flows.datasets.two_moons(10, seed=0).shape[0],
}))
"""


def test_missing_optional_dependencies_name_their_extra():
    run = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.splitlines()[-1])
    # The core (flows, 2-D data) works without any of them: a fresh flow of identity networks
    # is N(0, I), whose log-density at 0 is -log(2π).
    assert abs(out["core"] + 1.8378771) < 1e-5
    assert out["moons"] == 10
    assert "scikit-learn" in out["digits"] and 'pip install "tfp_flows[digits]"' in out["digits"]
    for key in ("plot", "from_import"):
        assert "matplotlib" in out[key] and 'pip install "tfp_flows[plot]"' in out[key]
    assert "Pillow" in out["text"] and 'pip install "tfp_flows[plot]"' in out["text"]


def test_plot_is_an_attribute_of_the_package():
    import tfp_flows

    assert "plot" in dir(tfp_flows)
    assert callable(tfp_flows.plot.save)
