# dpf: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STATE ?= .sim
PYTEST_ARGS ?=

.PHONY: all deps venv lint typecheck pytest test demo demo-down crds packages clean

all: test

# Debian packages the tests and the simulator run for real: etcd, Open vSwitch, iproute2, ethtool, kubectl.
deps:
	@bash scripts/install-deps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

# The fixtures start the real services each test needs (etcd members, OVS, the emulated Kubernetes API)
# on free loopback ports and stop them by PID. Exit code 5 (no tests collected) is a failure here.
pytest: venv
	@$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test: deps venv lint typecheck pytest

# The whole system on this machine with emulated BlueFields; Ctrl-C stops it and cleans up.
demo: deps venv
	$(VENV)/bin/dpf-sim up --manifests docs/examples --state-dir $(STATE)

demo-down: venv
	$(VENV)/bin/dpf-sim down --state-dir $(STATE)

crds: venv
	$(VENV)/bin/dpf-controller crds --out-dir deploy/crds

# dist/dpf_<version>_amd64.deb and dist/dpf-<version>-1.x86_64.rpm: a venv under /opt/dpf on the system's python3.11,
# the systemd units, /etc/dpf (see docs/install.md). Dependency wheels and nfpm are cached in build/.
packages: venv
	PIP="$(PY) -m pip" bash packaging/build.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info
