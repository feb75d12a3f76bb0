# Tenantry developer tasks. `make test` and `make demo` work on a fresh machine: they create .venv,
# install the Python packages, kcat and promtool (Debian) and Kafka's jars (Maven Central) as needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUNTIME_STAMP := $(VENV)/.runtime-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
KAFKA_VERSION ?= 4.3.1
PYTEST_ARGS ?=

.PHONY: test test-unit test-kafka39 demo lint codegen bench bench-quick microbench fuzz deps system-deps \
	demo-system-deps kafka-jars clean

# What the proxy itself needs (and so the demo): no test or benchmark packages.
$(RUNTIME_STAMP): pyproject.toml setup.py protocol/_native.c
	@test -x $(BIN)/python || { echo ">> creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo ">> installing tenantry and its runtime packages into $(VENV)"
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e .
	@touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	@echo ">> installing the test and benchmark packages into $(VENV)"
	@$(BIN)/pip install -q -e '.[test,bench]'
	@touch $(STAMP)

# kcat for the demo's printed commands; Java and Maven run the broker.
demo-system-deps:
	@command -v kcat >/dev/null 2>&1 || { echo ">> installing kcat (Debian)"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q kcat; }
	@command -v java >/dev/null 2>&1 || { echo ">> installing Java 17 (Debian)"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q openjdk-17-jdk-headless; }
	@command -v mvn >/dev/null 2>&1 || { echo ">> installing Maven (Debian)"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q maven; }

system-deps: demo-system-deps
	@# promtool checks and unit-tests deploy/prometheus (Debian packages it with the server, which is not started)
	@command -v promtool >/dev/null 2>&1 || { echo ">> installing promtool (Debian)"; $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q --no-install-recommends prometheus; }

kafka-jars: $(RUNTIME_STAMP) demo-system-deps
	@echo ">> Kafka $(KAFKA_VERSION) jars from Maven Central (cached in ~/.cache/tenantry/kafka; slow only the first time)"
	@$(BIN)/python -c "from tenantry.localkafka import resolve_jars; print(resolve_jars('$(KAFKA_VERSION)'))" >/dev/null

deps: $(STAMP) system-deps kafka-jars

## The whole suite (unit and integration) against a real broker of the default Kafka version.
test: deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## The integration tests against Kafka 3.9.
test-kafka39:
	$(MAKE) kafka-jars KAFKA_VERSION=3.9.2
	TENANTRY_TEST_KAFKA_VERSION=3.9.2 $(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

## A local broker and the proxy in the foreground; Ctrl-C stops both. Installs only what they need.
demo: $(RUNTIME_STAMP) demo-system-deps kafka-jars
	$(BIN)/python -m tenantry.localkafka.demo

# mypy and import-linter cannot follow setuptools' editable-install finder, so they check a symlinked tenantry/ view.
lint: $(STAMP)
	$(BIN)/ruff check .
	@mkdir -p .lint/tenantry && for p in protocol proxy tenants localkafka; do ln -sfn ../../$$p .lint/tenantry/$$p; done
	cd .lint && ../$(BIN)/mypy --config-file ../pyproject.toml -p tenantry.protocol -p tenantry.tenants \
		-p tenantry.proxy -p tenantry.localkafka
	@# The package boundaries ([tool.importlinter] in pyproject.toml): the codec imports neither the proxy
	@# nor tenants, tenants import no event loop, pipeline stages never reach the server or a connection.
	cd .lint && PYTHONPATH=. ../$(BIN)/lint-imports ../pyproject.toml

## Regenerate protocol/messages from the pinned Kafka version's schemas.
codegen: $(STAMP) kafka-jars
	$(BIN)/python -m tenantry.protocol.codegen --kafka-version $(KAFKA_VERSION)

## The benchmark suite, direct and through the proxy in one run: results/<date>/ (JSON, Markdown, PNG).
bench: deps
	$(BIN)/python -m benchmarks

## The same, smaller: under 5 minutes.
bench-quick: deps
	$(BIN)/python -m benchmarks --quick

## Hot-path microbenchmarks, in-process (no broker): the framer, scanner, splice and one request's round trip.
microbench: $(STAMP)
	$(BIN)/python -m benchmarks.micro

## Mutated frames of every tenant API, before and after login, against a real broker (200,000 by default).
fuzz: deps
	$(BIN)/python -m tests.fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info
