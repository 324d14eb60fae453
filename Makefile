# stream-rec: `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= out
SHARED ?= ../shared/data

.PHONY: help install run test test-fast lint bench eval chaos soak kafka-jars clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-11s %s\n", $$1, $$2}'

install: $(STAMP) ## create ./.venv and install stream-rec with its dev extras
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install -e ".[dev,plots,server]"
	touch $(STAMP)

run: install ## the demo: embedded broker + worker + real shop events, recs on screen
	$(BIN)/stream-rec demo

kafka-jars: ## fetch Apache Kafka's jars once (Maven) for the real-Kafka tests
	bash scripts/fetch-kafka.sh

test: install kafka-jars ## every test: unit + integration on Tansu and real Kafka, real model
	$(BIN)/python -m pytest

test-fast: install ## unit tests only
	$(BIN)/python -m pytest tests/unit -q

lint: install ## ruff and mypy
	$(BIN)/ruff check stream_rec tests bench
	$(BIN)/mypy

bench: install ## benchmarks: they print figures (see docs/benchmarks.md)
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_model.py

chaos: install kafka-jars ## fault-injection tests: kills, restarts, slow readers (docs/reliability.md)
	$(BIN)/python -m pytest -m chaos tests/integration

soak: install ## longer fault-injection runs; they print figures
	$(BIN)/python bench/soak.py

eval: install ## replay evaluation on the real datasets in $(SHARED), reports in $(OUT)/
	$(BIN)/stream-rec eval --dataset movielens --data-dir $(SHARED)/movielens-latest-small --protocol llamarec --out $(OUT)/eval-movielens
	$(BIN)/stream-rec eval --dataset online-retail --data-dir $(SHARED)/online-retail --protocol time-split --out $(OUT)/eval-online-retail
	$(BIN)/stream-rec eval --dataset amazon-minionerec --data-dir $(SHARED)/amazon18-industrial-scientific-minionerec --protocol minionerec --out $(OUT)/eval-amazon

clean: ## remove local state and outputs (not the venv)
	rm -rf var $(OUT) .pytest_cache .mypy_cache .ruff_cache
