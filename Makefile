# Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OUT ?= outputs

.PHONY: demo test bench bench-smoke bench-digits clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,digits]"
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/name_density.py --out $(OUT)/name_density

test: $(VENV)/.installed
	$(PY) -m ruff check tfp_flows tests benchmarks examples
	$(PY) -m pytest -q -n 2 tests

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

bench-smoke: $(VENV)/.installed
	$(PY) benchmarks/run.py --smoke

bench-digits: $(VENV)/.installed
	$(PY) benchmarks/digits.py

clean:
	rm -rf $(VENV) $(OUT) *.egg-info
