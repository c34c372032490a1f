# Voucherify webhook receiver. `make help` lists the targets.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Local runs sign with this secret unless you set your own; production must set its own.
export VOUCHERIFY_WEBHOOK_SECRET ?= local-dev-secret
SAMPLE := tests/fixtures/events/customer.order.paid.json

.DEFAULT_GOAL := help
.PHONY: help install run migrate replay docs test lint bench bench-export bench-soak bench-replay fixtures clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the service with its dev tools

run: $(STAMP) ## migrate and serve on 127.0.0.1:8000 (DATABASE_URL, or embedded Postgres in .data/)
	@echo "Send a signed sample event once it is up (in another terminal):"
	@echo "  curl -i http://127.0.0.1:$${PORT:-8000}/webhooks/voucherify -H 'content-type: application/json' \\"
	@echo "    -H \"x-voucherify-signature: \$$(VOUCHERIFY_WEBHOOK_SECRET=$$VOUCHERIFY_WEBHOOK_SECRET $(PY) -m service sign $(SAMPLE))\" \\"
	@echo "    --data-binary @$(SAMPLE)"
	LOG_FORMAT=$${LOG_FORMAT:-console} $(PY) -m service migrate
	LOG_FORMAT=$${LOG_FORMAT:-console} $(PY) -m service serve

migrate: $(STAMP) ## upgrade the database schema to the latest migration
	LOG_FORMAT=$${LOG_FORMAT:-console} $(PY) -m service migrate

replay: $(STAMP) ## rebuild every normalized table from the stored events
	$(PY) -m service replay

docs: $(STAMP) ## regenerate docs/schema.md from a migrated database's comments
	LOG_FORMAT=$${LOG_FORMAT:-console} $(PY) -m service migrate
	$(PY) -m service schema-doc > docs/schema.md

test: $(STAMP) ## run every test (DATABASE_URL, or embedded Postgres)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, ruff format --check, mypy --strict, deployment manifests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/kubernetes-validate --strict --quiet deploy/k8s/*.yaml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec deploy/docker-compose.yml

bench: $(STAMP) ## service vs no-op ceiling vs naive receiver under wrk (installs wrk if missing)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| { echo "install wrk (Debian/Ubuntu: apt-get install wrk)"; exit 1; }
	$(PY) bench/run.py $(BENCH_ARGS)

bench-export: $(STAMP) ## export 1,000,000 orders: rows/s and peak RSS vs a fetch-all baseline
	$(PY) bench/export_rows.py --rows $${ROWS:-1000000}

bench-soak: $(STAMP) ## one service process through ~1,000,000 events: RSS per round (~10 min)
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| { echo "install wrk (Debian/Ubuntu: apt-get install wrk)"; exit 1; }
	$(PY) bench/soak.py --events $${EVENTS:-1050000}

bench-replay: $(STAMP) ## `replay` over ~95,000 stored events: events/s, Python vs Postgres CPU
	$(PY) bench/replay_rate.py --events $${EVENTS:-100000}

fixtures: $(STAMP) ## regenerate tests/fixtures/events from Voucherify's OpenAPI file
	$(PY) tests/fixtures/build_fixtures.py

clean: ## remove the venv, caches and the embedded database
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
