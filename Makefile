# Everything a fresh machine needs: `make run` and `make test` create the virtualenv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run test unit lint contracts contracts-release bench clean

$(INSTALLED): pyproject.toml contracts/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./contracts -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

## The service on an embedded Postgres and Kafka (127.0.0.1:9092); health on :8080. Ctrl-C stops all.
run: install
	$(BIN)/order-service dev

## The whole suite: static checks, then unit, integration and end-to-end tests on real servers.
test: install lint
	$(BIN)/python -m pytest -p no:cacheprovider

unit: install
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit

lint: install
	$(BIN)/ruff check service contracts tests benchmarks examples
	$(BIN)/mypy

## Regenerate the JSON Schemas and AsyncAPI document in contracts/src/contracts/ from the models.
contracts: install
	$(BIN)/python -m service.entrypoints.contract_files

# On a release: the generated schemas become the baseline that later changes must stay
# compatible with.
contracts-release: contracts
	rm -f contracts/released/*.json
	cp contracts/src/contracts/schemas/*.json contracts/released/

bench: install
	$(BIN)/python -m benchmarks.commands_per_second $(ARGS)

clean:
	rm -rf $(VENV) .devstack .dev-master.key .mypy_cache .ruff_cache
