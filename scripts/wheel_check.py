"""Builds the wheel, installs it alone into a fresh venv and runs the README's Python blocks.

``make wheel-check`` (or ``python scripts/wheel_check.py [--keep]``). Nothing of the repository
is importable there: the venv gets only the wheel and its declared dependencies (pip reuses its
cache, so reinstalling TensorFlow takes a minute or two), and the blocks run in an empty
temporary folder without ``PYTHONPATH``. Exits non-zero if any step fails.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Runs every ```python block of the README in fresh globals, in the current folder.
RUNNER = """
import pathlib, re, sys, time
import tfp_flows
print("tfp_flows", tfp_flows.__version__, "from", tfp_flows.__file__, flush=True)
assert "site-packages" in tfp_flows.__file__, "tfp_flows was not imported from the venv"
blocks = re.findall(r"```python\\n(.*?)```", pathlib.Path(sys.argv[1]).read_text(), flags=re.S)
for index, block in enumerate(blocks):
    start = time.perf_counter()
    exec(compile(block, f"README.md block {index}", "exec"), {"__name__": "__readme__"})
    print(f"README block {index}: ok ({time.perf_counter() - start:.0f} s)", flush=True)
print(f"all {len(blocks)} README blocks ran", flush=True)
"""


def _run(cmd, **kwargs):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tfp_flows_wheel_check_"))
    start = time.perf_counter()
    readme = (ROOT / "README.md").read_text()
    try:
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp / "dist",
              ROOT])
        (wheel,) = (tmp / "dist").glob("tfp_flows-*.whl")
        _run([sys.executable, "-m", "venv", tmp / "venv"])
        python = tmp / "venv" / "bin" / "python"
        _run([python, "-m", "pip", "install", "--quiet", wheel])
        work = tmp / "work"
        work.mkdir()
        (work / "README.md").write_text(readme)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        _run([python, "-c", RUNNER, "README.md"], cwd=work, env=env)
        print(f"wheel check passed: {wheel.name} in {time.perf_counter() - start:.0f} s")
    finally:
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
