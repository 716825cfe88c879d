"""What a user installs: dependencies, license, changelog, and public namespaces that hold the
public API (``dir(tfp_flows.flows)`` shows builders, not ``np`` / ``tf`` / ``tfb`` / ``tfd``)."""

import configparser
import importlib
import pathlib
import pkgutil
import types

import pytest

import tfp_flows

ROOT = pathlib.Path(__file__).resolve().parent.parent
SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")

# The package, its subpackages and its top-level modules; files inside bijectors/ and
# training/ are implementation, reached through their package's namespace.
PUBLIC = ["tfp_flows"] + [
    f"tfp_flows.{info.name}" for info in pkgutil.iter_modules(tfp_flows.__path__)
    if not info.name.startswith("_")]


def test_optional_packages_are_not_dependencies():
    required = SETUP["options"]["install_requires"].lower()
    for name in ("matplotlib", "pillow", "scikit-learn"):
        assert name not in required
    for name in ("tensorflow", "tensorflow-probability", "tf-keras", "numpy", "tqdm"):
        assert name in required


def test_license_and_changelog():
    assert SETUP["metadata"]["license"] == "Apache-2.0"
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## Unreleased" in changelog
    assert f"## {tfp_flows.__version__}" in changelog


def test_public_modules_are_found():
    for name in ("tfp_flows.bijectors", "tfp_flows.flows", "tfp_flows.training",
                 "tfp_flows.datasets", "tfp_flows.plot", "tfp_flows.pitfalls"):
        assert name in PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_namespace_is_the_public_api(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r}, which does not exist"
    listed = set(dir(module))
    for alias in ("np", "tf", "tfp", "tfb", "tfd", "keras", "math", "os"):
        assert alias not in listed, f"dir({name}) shows the import {alias!r}"
    for attr in listed - set(module.__all__):
        assert attr.startswith("__") or isinstance(getattr(module, attr), types.ModuleType), (
            f"dir({name}) shows {attr!r}, which is not in __all__")
