# vnetlab: two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SYSPKGS := iproute2 nftables tcpdump iperf3 iputils-ping curl net-tools procps traceroute dnsutils graphviz chromium

.PHONY: demo test lint venv sysdeps azcli test-az bench bench-scale

$(BIN)/vnetlab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/vnetlab

# The real az CLI for tests/test_az_cli.py, in its own venv (azure-cli 2.91: about 75 s and 730 MB).
AZVENV ?= .venv-az
$(AZVENV)/bin/az:
	$(PY) -m venv $(AZVENV)
	$(AZVENV)/bin/pip install -q --upgrade pip
	$(AZVENV)/bin/pip install -q azure-cli

azcli: $(AZVENV)/bin/az

# System packages for the emulation, installed only when root (CI is root).
sysdeps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else echo "not root: skipping system packages ($(SYSPKGS)); emulation tests will be skipped"; fi

demo: venv
	$(BIN)/vnetlab demo

# Lint (ruff: pyflakes, bugbear, syntax errors; config in pyproject.toml) before the tests.
lint: venv
	$(BIN)/ruff check src tests benchmarks

test: venv sysdeps azcli lint
	$(BIN)/pytest -q

test-az: venv azcli
	$(BIN)/pytest tests/test_az_cli.py

bench: venv
	$(BIN)/python benchmarks/sim.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/dns.py
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/python benchmarks/netns.py; fi

# Large labs through the real CLI and the ARM endpoint (issue 8): both shapes, about ten minutes.
bench-scale: venv
	$(BIN)/python benchmarks/scale.py
