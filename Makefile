# `make run` and `make test` create .venv on first use (pip, pinned requirements).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench report device-dry campaign

# The .pth puts this clone on the venv's path (the harness's editable install; `pip install .`
# installs the optimizers alone), so scripts/ and tests import trainers, data and models.
$(VENV)/.installed: requirements.txt pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	$(PY) -c 'import site, sys; open(site.getsitepackages()[0] + "/overshoot_harness.pth", "w").write(sys.argv[1] + "\n")' "$(CURDIR)"
	touch $@

run: $(VENV)/.installed
	$(PY) main.py $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict overshoot
	$(VENV)/bin/mypy main.py scripts data models trainers

bench: $(VENV)/.installed
	$(PY) scripts/bench_optimizers.py
	$(PY) scripts/bench_harness.py

report: $(VENV)/.installed
	$(PY) scripts/report.py $(RESULTS) $(ARGS)

device-dry: $(VENV)/.installed
	$(PY) scripts/device_check.py --dry --out $${TMPDIR:-/tmp}/overshoot-device-dry

campaign: $(VENV)/.installed  # make campaign TASK=vae_mnist|all [ARGS=--budget cpu]: what it lacks
	$(PY) scripts/campaign.py $(TASK) $(ARGS)
