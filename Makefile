# make demo: set up .venv (once) and run the paper in miniature on the embedded digits data.
# make test: set up .venv (once) and run lint + the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision come from the local disk here; pyproject.toml only asks for ranges.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test lint fmt clean bench

$(BIN)/anisocert: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	touch $(BIN)/anisocert

setup: $(BIN)/anisocert

demo: setup
	$(BIN)/python -m anisocert.demo --out demo-out

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

fmt: setup
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

test: setup lint
	$(BIN)/python -m pytest -q tests

# make bench: the quick speed benchmark (issue 5) against the public code; writes docs/benchmarks.md.
bench: setup
	$(BIN)/python -m pip install -q --no-deps ancer-python ddsmoothing-python tqdm
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
