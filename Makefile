# Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= outputs
DOCS ?= build/docs

.PHONY: demo test docs wheel-check bench bench-smoke bench-digits clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,all,docs]"
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/name_density.py --out $(OUT)/name_density

test: $(VENV)/.installed
	$(PY) -m ruff check tfp_flows tests benchmarks examples scripts
	$(PY) -m pytest -q -n 2 tests

# The API reference (pdoc) in $(DOCS)/index.html; any pdoc warning fails the build.
# PDOC_ALLOW_EXEC: importing TensorFlow runs `uname -p`, which pdoc would otherwise refuse.
docs: $(VENV)/.installed
	rm -rf $(DOCS)
	PDOC_ALLOW_EXEC=1 $(PY) -W error -W ignore::DeprecationWarning -m pdoc --docformat google \
	    --no-show-source -o $(DOCS) tfp_flows tfp_flows.plot tfp_flows.pitfalls
	@echo "API reference: $(DOCS)/index.html"

# Builds the wheel, installs it alone into a fresh venv outside the repository and runs
# the README's Python blocks there. Not in CI: it took 28 minutes on a loaded 2-core machine.
wheel-check: $(VENV)/.installed
	$(PY) scripts/wheel_check.py

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

bench-smoke: $(VENV)/.installed
	$(PY) benchmarks/run.py --smoke

bench-digits: $(VENV)/.installed
	$(PY) benchmarks/digits.py

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
