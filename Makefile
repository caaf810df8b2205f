# Two commands set everything up on a fresh machine with Python 3.11: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the browser tests (tests/test_browser.py) drive Debian's chromium at this path
CHROMIUM := /usr/bin/chromium
BROWSER_PACKAGES := chromium fonts-dejavu-core

.PHONY: install chromium run test bench clean

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

# installed when missing and we may (root with apt); otherwise stop with the command, so that
# `make test` never passes with its browser tests skipped
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $(BROWSER_PACKAGES) for the browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null \
	    || echo "apt-get could not install $(BROWSER_PACKAGES)" >&2; \
	fi
	@test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) is missing, so the browser tests cannot run;" \
	  "install it with: sudo apt-get install -y --no-install-recommends $(BROWSER_PACKAGES)" >&2; exit 1; }

test: install chromium
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m wbg_core bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
