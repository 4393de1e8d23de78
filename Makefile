# The newcomer's two commands: `make demo` and `make test`. Each installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages the tests use, as command:package, installed only where missing:
# systemd-analyze, systemctl and a user manager (systemd); unshare, nsenter and setpriv
# (util-linux), with which tests/support/systemd_user.py starts that manager in a mount
# namespace, as root or as an unprivileged user; useradd (passwd), which makes that user;
# tmux for the terminal tests; zsh, fish and bash-completion, whose completion of credd and
# credctl the tests run; a Secret Service for the keyring tests (gnome-keyring, run under
# dbus-run-session by tests/support/secret_service.py; secret-tool to look inside). That
# user's venv needs Debian's /usr/bin/python3 with its venv module (python3-venv), and
# bash-completion is a script, not a command: both checked apart.
DEBIAN_TOOLS := systemd-analyze:systemd systemctl:systemd /usr/lib/systemd/systemd:systemd \
  unshare:util-linux nsenter:util-linux setpriv:util-linux useradd:passwd tmux:tmux \
  zsh:zsh fish:fish \
  gnome-keyring-daemon:gnome-keyring dbus-run-session:dbus secret-tool:libsecret-tools
DEBIAN_STAMP := $(VENV)/.debian

.PHONY: test lint typecheck pytest demo bench clean debian-deps reliability-report

$(BIN)/python:
	$(PY) -m venv $(VENV)

# bin/credctl too: the editable install copies the launcher into $(BIN), it does not link it.
$(STAMP): pyproject.toml bin/credctl | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: lint typecheck pytest

# Re-checked when this Makefile changes, so a package added to the list gets installed.
$(DEBIAN_STAMP): Makefile | $(BIN)/python
	@missing=""; for pair in $(DEBIAN_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	[ -f /usr/share/bash-completion/bash_completion ] || missing="$$missing bash-completion"; \
	missing=$$(printf '%s\n' $$missing | sort -u | xargs); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "note: missing $$missing; the tests that need them will be skipped"; fi; \
	fi
	touch $(DEBIAN_STAMP)

debian-deps: $(DEBIAN_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check credd tests bench demo
	$(BIN)/ruff format --check credd tests bench demo
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy credd

pytest: $(STAMP) $(DEBIAN_STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

demo: $(STAMP) $(DEBIAN_STAMP)
	$(BIN)/python demo/demo.py

# The benchmark measures credd as users install it: a regular (not editable) install in a
# venv of its own, so the editable install's import hook is not counted in credctl's start.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
$(BENCH_STAMP): pyproject.toml bin/credctl $(wildcard credd/*.py credd/*/*.py credd/units/*)
	$(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet --force-reinstall --no-deps .
	$(BENCH_VENV)/bin/python -m pip install --quiet '.[test,bench]'
	touch $(BENCH_STAMP)

# #3 keeps its long-term key in a GNOME Keyring: the Debian packages of `make test`.
bench: $(BENCH_STAMP) $(DEBIAN_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py

# Runs tests/reliability/ and regenerates docs/reliability.md from its results.
reliability-report: $(STAMP) $(DEBIAN_STAMP)
	$(BIN)/python tests/reliability/report.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) .mypy_cache .pytest_cache .ruff_cache
