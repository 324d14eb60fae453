# stream-rec: `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
OUT    ?= out
SHARED ?= ../shared/data

.PHONY: help install browser run test test-fast lint lock bench bench-model eval verify tune-vectors chaos soak kafka-jars console-screenshot clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-11s %s\n", $$1, $$2}'

install: $(STAMP) ## create ./.venv and install stream-rec with its dev extras
$(STAMP): pyproject.toml setup.py stream_rec/core/_mixture.c stream_rec/core/_features.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install -e ".[dev,plots,server]"
	touch $(STAMP)

run: install ## the demo: embedded broker + worker + real shop events, recs on screen
	$(BIN)/stream-rec demo

browser: ## headless Chromium + chromedriver from the Debian packages (the console test)
	bash scripts/install-browser.sh

kafka-jars: ## fetch Apache Kafka's jars once (Maven) for the real-Kafka tests
	bash scripts/fetch-kafka.sh

test: install kafka-jars browser ## every test: unit + integration on Tansu and real Kafka, real model
	$(BIN)/python -m pytest

console-screenshot: install browser ## run the console test and save its screenshot as docs/console.png
	STREAM_REC_CONSOLE_SCREENSHOT=docs/console.png $(BIN)/python -m pytest -q tests/integration/serving/test_console_browser.py

test-fast: install ## unit tests only
	$(BIN)/python -m pytest tests/unit -q

lint: install ## ruff, mypy and the import contracts (layers, no cycles)
	$(BIN)/ruff check stream_rec tests bench examples scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

lock: install ## rewrite requirements.lock (the image's pinned runtime dependencies) from the venv
	$(BIN)/python scripts/lock_requirements.py

# the default sweep: 2 brokers x 2 worker counts x 5 offered loads, ~30 s a point (~12 min);
# the Kafka points need `make kafka-jars` (skipped, with the reason, without it)
BENCH_ARGS ?= --broker tansu,kafka --workers 1,2 --rate 250,500,1000,2000,max --duration 15 --warmup 3

bench: install ## end-to-end sweep through real brokers: $(OUT)/bench/{results.json,results.md,latency_vs_throughput.png}
	$(BIN)/python bench/bench_pipeline.py $(BENCH_ARGS) --out $(OUT)/bench

bench-model: install ## model benchmarks: embeddings, rerank, memory (docs/model.md)
	$(BIN)/python bench/bench_model.py

chaos: install kafka-jars ## fault-injection tests: kills, restarts, slow readers (docs/reliability.md)
	$(BIN)/python -m pytest -m chaos tests/integration

soak: install ## longer fault-injection runs; they print figures
	$(BIN)/python bench/soak.py

eval: install ## replay evaluation on the real datasets in $(SHARED), reports in $(OUT)/
	$(BIN)/stream-rec eval --dataset movielens --data-dir $(SHARED)/movielens-latest-small --protocol llamarec --out $(OUT)/eval-movielens
	$(BIN)/stream-rec eval --dataset online-retail --data-dir $(SHARED)/online-retail --protocol time-split --out $(OUT)/eval-online-retail
	$(BIN)/stream-rec eval --dataset amazon-minionerec --data-dir $(SHARED)/amazon18-industrial-scientific-minionerec --protocol minionerec --out $(OUT)/eval-amazon

verify: install kafka-jars ## black-box check: real-data slices through a worker over Tansu and Kafka = eval's lists (docs/accuracy.md)
	$(BIN)/stream-rec verify --dataset online-retail --data-dir $(SHARED)/online-retail --max-events 5000 --out $(OUT)/verify-online-retail-tansu
	$(BIN)/stream-rec verify --dataset amazon-minionerec --data-dir $(SHARED)/amazon18-industrial-scientific-minionerec --max-events 5000 --broker kafka --out $(OUT)/verify-industrial-kafka
	$(BIN)/stream-rec verify --dataset movielens --data-dir $(SHARED)/movielens-latest-small --max-events 3000 --out $(OUT)/verify-movielens-tansu

tune-vectors: install ## item text vectors compared on the validation stages (docs/model.md), ~45 min
	nice -n 10 $(BIN)/python bench/compare_item_vectors.py --data-dir $(SHARED) --out $(OUT)/item-vectors --sweep-projection

clean: ## remove local state and outputs (not the venv)
	rm -rf var $(OUT) .pytest_cache .mypy_cache .ruff_cache
