# Two entry points every user and CI depend on: `make serve` and `make test`.
# Each creates .venv on first use and installs what it needs from PyPI; nothing downloads at run time.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: serve test lint venv bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files make the install idempotent: they are rebuilt only when pyproject.toml changes.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench,tesseract]'
	touch $@ $(VENV)/.installed-base

# Debian packages some tests use, installed only when missing and only where we may (root with apt-get):
# the English data of the optional tesseract engine, and chromium for the /docs test. Elsewhere those
# tests skip and say why.
TESSDATA_ENG ?= /usr/share/tesseract-ocr/5/tessdata/eng.traineddata
system-deps:
	@missing=""; \
	if [ ! -e "$(TESSDATA_ENG)" ] && [ -z "$$TESSDATA_PREFIX" ]; then missing=" tesseract-ocr-eng"; fi; \
	if ! command -v chromium >/dev/null; then missing="$$missing chromium"; fi; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "could not install$$missing: the tests that need it will skip"; \
	fi

venv: $(VENV)/.installed-base

serve: $(VENV)/.installed-base
	$(BIN)/shmbridge serve $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

test: $(VENV)/.installed-test system-deps
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/shmbridge bench $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .ruff_cache
