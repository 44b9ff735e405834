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
	$(BIN)/python -m pip install --quiet -e '.[test,bench,tesseract,capture]'
	touch $@ $(VENV)/.installed-base

# Debian packages the tests use, installed only when missing and only where we may (root with apt-get);
# elsewhere the tests that need them skip and say why. Each entry is PACKAGE:FILE-IT-PROVIDES:
# - tesseract-ocr-eng: English data for the optional tesseract engine;
# - chromium: the /docs test in a real headless browser;
# - xvfb, xterm, x11-apps (xwd), libxcb-shm0, fonts-dejavu-core: a real X screen with text for the capture tests.
TESSDATA_ENG ?= /usr/share/tesseract-ocr/5/tessdata/eng.traineddata
SYSTEM_PACKAGES := tesseract-ocr-eng:$(TESSDATA_ENG) xvfb:/usr/bin/Xvfb xterm:/usr/bin/xterm x11-apps:/usr/bin/xwd \
	libxcb-shm0:/usr/share/doc/libxcb-shm0 fonts-dejavu-core:/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf \
	chromium:/usr/bin/chromium
system-deps:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
	  [ -e "$${entry#*:}" ] || missing="$$missing $${entry%%:*}"; \
	done; \
	if [ -n "$$TESSDATA_PREFIX" ]; then missing=$$(echo "$$missing" | sed 's/tesseract-ocr-eng//'); fi; \
	missing=$$(echo $$missing); \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $$missing with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 \
	    $$missing >/dev/null) || echo "could not install $$missing: the tests that need them will skip"; \
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
