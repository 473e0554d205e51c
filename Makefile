# vnetlab: two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SYSPKGS := iproute2 nftables tcpdump iperf3 iputils-ping curl net-tools procps

.PHONY: demo test venv sysdeps test-az bench clean-lab

$(BIN)/vnetlab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/vnetlab

# System packages for the emulation, installed only when root (CI is root).
sysdeps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else echo "not root: skipping system packages ($(SYSPKGS)); emulation tests will be skipped"; fi

demo: venv
	$(BIN)/vnetlab demo

test: venv sysdeps
	$(BIN)/pytest

test-az: venv
	$(BIN)/pytest -m az tests/test_az_cli.py

bench: venv
	$(BIN)/python benchmarks/sim.py
