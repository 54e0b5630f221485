# Two commands for a fresh machine (both idempotent):
#   make run   installs the app into .venv and starts it on http://localhost:8501 (SQLite, local models, no keys)
#   make test  installs everything the tests need and runs the whole suite (lint, SQLite + PostgreSQL, browser)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: run test install install-dev system-packages engine health lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, from the pinned CPU build, so nothing pulls the CUDA wheels.
$(VENV)/.app-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.app-installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.app-installed

install-dev: $(VENV)/.dev-installed system-packages

# Debian packages the tests drive: Chromium for the browser tests, Tesseract for OCR, Postfix and Dovecot for the
# mail tests (tests/mail_servers.py starts them on 127.0.0.1 from its own configuration; nothing is enabled here).
system-packages:
	@command -v chromium >/dev/null && command -v tesseract >/dev/null && \
		test -x /usr/sbin/postfix && test -x /usr/sbin/dovecot && test -x /usr/lib/dovecot/lmtp || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
			tesseract-ocr postfix dovecot-imapd dovecot-lmtpd >/dev/null; }

run: install
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.headless true \
		--browser.serverAddress localhost --browser.gatherUsageStats false --server.fileWatcherType none

engine: install
	$(BIN)/python -m engine run

health: install
	$(BIN)/python -m engine health

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install-dev lint
	$(BIN)/python -m pytest -n auto --dist loadgroup -m 'not serial'
	$(BIN)/python -m pytest -m serial
