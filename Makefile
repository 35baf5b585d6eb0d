# Two commands for a new machine: `make train` and `make test` set up what is missing (a venv
# in .venv with the project and its [dev] extra), then run the main job or the test suite.
PYTHON ?= python3
VENV := .venv
READY := $(VENV)/bin/lightning-mnist

.PHONY: train test setup

setup: $(READY)

$(READY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e ".[dev]"
	touch $(READY)

train: $(READY)
	$(VENV)/bin/lightning-mnist fit --config configs/tutorial.yaml

test: $(READY)
	$(VENV)/bin/python -m pytest -n auto --maxprocesses 4 --dist loadfile --durations=20
