# Two commands set everything up on a fresh machine with Python 3.11: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	# the local CPU build of torch first, so nothing pulls the multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-build-isolation --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/streamlit run app.py --server.headless true --browser.gatherUsageStats false

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m wbg_core bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
