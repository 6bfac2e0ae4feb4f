# The two commands of the README:
#   make demo   sets everything up and runs the main job on a local Ray
#   make test   sets everything up, checks the import contracts (lint-imports) and runs the tests
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= outputs/demo

.PHONY: setup demo test bench lint
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) -m ocr.demo --out $(OUT)

test:
	WITH_BROWSER=1 bash scripts/setup.sh
	$(VENV)/bin/lint-imports --no-cache   # the layers of ocr/ (contracts in pyproject.toml)
	$(PY) -m pytest -q --durations=30 tests

bench: setup
	$(PY) benchmarks/run_all.py

lint:
	$(VENV)/bin/ruff check ocr jobs tests benchmarks
	$(VENV)/bin/lint-imports --no-cache
