# One Makefile for people and CI. `make test` and `make demo` set up everything they need on a
# fresh machine: system packages (JDK, Maven; PostgreSQL is installed by the local stack when
# missing), the Python virtualenv, the Kafka jars (on first start of the local stack).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test chaos chaos-cluster unit integration check imports lint format typecheck demo up stack-stop deps system-deps clean

test: deps ## the whole suite, starting Kafka and PostgreSQL when none is configured
	$(BIN)/pytest

chaos: deps ## fault injection under load on its own Kafka and PostgreSQL: one broker, then three (~15 min)
	$(BIN)/pytest tests/chaos -m "chaos and not cluster"
	$(BIN)/pytest tests/chaos -m "chaos and cluster"

chaos-cluster: deps ## broker faults and scale-out on a three-broker cluster of its own (~7 min)
	$(BIN)/pytest tests/chaos -m "chaos and cluster"

unit: deps
	$(BIN)/pytest tests/unit

integration: deps
	$(BIN)/pytest tests/integration tests/e2e

check: lint typecheck imports

imports: deps ## the layer contracts in pyproject.toml
	$(BIN)/lint-imports

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: deps
	$(BIN)/mypy
	$(BIN)/mypy --strict tests

demo: deps ## the demo: the local stack, the platform and the seed's story
	$(BIN)/hookline demo

up: deps
	$(BIN)/hookline up

stack-stop: deps
	$(BIN)/hookline stack stop

deps: system-deps $(STAMP)

system-deps:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  echo "installing a JDK and Maven for the local Kafka"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends default-jdk-headless maven >/dev/null; }

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
