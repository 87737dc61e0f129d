# One set of commands for people and CI. `make run` and `make test` do all
# set-up: a virtual environment in .venv, pinned dependencies, migrations.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_CONFIG := touchline.demo.toml
PORT ?= 8080

.PHONY: install run test lint format typecheck messages bench clean

# The openai-whisper extra installs with --no-deps, because openai-whisper's
# triton requirement would pull a CUDA build of PyTorch; its lock pins the
# CPU build and every dependency.
$(STAMP): pyproject.toml requirements.lock requirements-openai-whisper.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-openai-whisper.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/touchline --config $(DEMO_CONFIG) serve --demo --host 127.0.0.1 --port $(PORT)

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

# Extract page text into web/locale/messages.pot and merge it into each
# language's .po file; translate the new entries there, then commit both.
# The server compiles the .po files when it starts, so no .mo file is built.
messages: install
	$(BIN)/pybabel extract --mapping-file babel.cfg --add-location file \
		--sort-output --no-wrap --project Touchline \
		--output-file web/locale/messages.pot .
	$(BIN)/pybabel update --input-file web/locale/messages.pot \
		--output-dir web/locale --domain messages --no-wrap \
		--no-fuzzy-matching --ignore-obsolete --init-missing \
		--locale en
	$(BIN)/pybabel update --input-file web/locale/messages.pot \
		--output-dir web/locale --domain messages --no-wrap \
		--no-fuzzy-matching --ignore-obsolete --init-missing \
		--locale zh_Hans

bench: install
	HF_HUB_OFFLINE=1 $(BIN)/python bench/webhooks.py
	HF_HUB_OFFLINE=1 $(BIN)/python bench/transcribe_rtf.py

# PNGs of the main pages for docs/screenshots, from a fresh demo server in a
# temporary directory. Needs Debian's chromium and, for Chinese text,
# fonts-noto-cjk.
.PHONY: screenshots
screenshots: install
	HF_HUB_OFFLINE=1 $(BIN)/python docs/screenshots/take.py

clean:
	rm -rf $(VENV) data
