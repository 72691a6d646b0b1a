# agentlog developer entry points. `make demo` runs the platform with a demo workload,
# `make test` runs the test-suite; both install what is missing first.
PYTHON ?= python3
STACK := deploy/local/stack.sh

.PHONY: install up down status test demo lint bench jaeger

install:            ## install the package and its development tools (idempotent)
	@$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev,faust]'

up:                 ## start Kafka (KRaft) and PostgreSQL locally, wait until healthy (AGENTLOG_SECURITY=sasl_ssl: the secure stack)
	@bash $(STACK) up

down:               ## stop the local stack, and the secure one if it was started (data is kept under .state/), and Jaeger
	@bash $(STACK) down
	@bash deploy/observability/jaeger.sh down
	@if [ -d .state/secure ]; then AGENTLOG_SECURITY=sasl_ssl bash $(STACK) down; fi

status:             ## show whether the local services answer
	@bash $(STACK) status

jaeger:             ## build Jaeger once (cached in ~/.cache/agentlog; the tracing tests send their spans to it)
	@bash deploy/observability/jaeger.sh build

test: install up jaeger  ## run the whole test-suite against the local stack
	@eval "$$(bash $(STACK) env)" && $(PYTHON) -m pytest $(PYTEST_ARGS)

demo: install up    ## create topics, publish a sample agent tree and tail it back
	@eval "$$(bash $(STACK) env)" && bash deploy/local/demo.sh

lint:               ## ruff and mypy (strict) over the package
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

bench: install up   ## run the benchmarks (prints figures, asserts nothing)
	@eval "$$(bash $(STACK) env)" && for b in publish gate projector replay sdk missions bus; do $(PYTHON) bench/$$b.py || exit 1; done
