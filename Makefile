# Everything installs into .venv from nothing; CI calls `make test` through .ci/run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all venv kube ldap-plugin test test-fast lint format demo bench images clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# kube-apiserver + etcd for the tests marked kube: built once into ~/.cache/esi-federation/kube/
# (minutes on a fresh machine), seconds when cached. `make clean` keeps that cache.
kube: $(STAMP)
	$(PY) -m hack.kube build

# Vault's LDAP auth method as an OpenBao plugin, for tests/federation/vault/test_vault_auth_ldap.py:
# built once into ~/.cache/esi-federation/ldap-plugin/ (docs/vault.md).
ldap-plugin: $(STAMP)
	$(PY) -m hack.ldap_plugin

# The whole suite, slow end-to-end tests included; installs the Debian packages it needs when missing.
test: lint kube ldap-plugin
	hack/system-deps.sh
	$(PY) -m pytest -n 2 --dist loadgroup

# For a quick local loop: skips the tests marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup -m 'not slow'

# The three OCI archives in build/images/ (docs/images.md); slow parts are cached in ~/.cache.
images: $(STAMP)
	hack/system-deps.sh
	$(PY) -m images.build

demo: $(STAMP)
	$(PY) -m hack.demo

bench: $(STAMP)
	hack/system-deps.sh
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
