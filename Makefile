# The two commands that matter: `make run` and `make test` (see README.md).
# Both install what is missing: a virtualenv in .venv with the platform and its
# dependencies, the Kafka jars (Maven Central, cached outside the repo) and, if needed,
# Debian's PostgreSQL.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DEVSTACK := $(PY) deploy/local/devstack.py
INSTALLED := $(VENV)/.installed

.PHONY: helm crd-schemas print-bilan chromium positions install run test test-unit infra infra-down status schemas token tokens revoke-token audit bench demo prometheus dead-letters redrive rebuild chaos retention freeze verify-bilan

install: $(INSTALLED)

$(INSTALLED): pyproject.toml contracts/pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 or python3 on PATH)" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ./contracts -e '.[dev]'
	@command -v promtool >/dev/null || $(MAKE) --no-print-directory prometheus
	@touch $@

## Prometheus and promtool (alert-rule tests, the real scrape test): Debian's package.
prometheus:
	@if [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	else echo "promtool is missing: install Debian's prometheus package (sudo apt-get install prometheus)" >&2; exit 1; fi

## Kafka, PostgreSQL and the services in the foreground; Ctrl-C stops all.
run: install
	$(DEVSTACK) run

## A new token with just those scopes for the local stack: make token SCOPES="reports:read"
## [TERRITORIES="bretagne normandie"] [WORKER=sw-017] [TTL=30d|never] [LABEL=funders]
## (expires after 90 days unless TTL says; no TERRITORIES: every territory)
SCOPES ?= all
token: install
	@$(DEVSTACK) token "$(SCOPES)" $(if $(TERRITORIES),--territories "$(TERRITORIES)") \
	  $(if $(WORKER),--worker "$(WORKER)") $(if $(TTL),--ttl "$(TTL)") $(if $(LABEL),--label "$(LABEL)")

## The local stack's tokens by short id (never the tokens); make revoke-token ID=<id or unique label>
tokens: install
	@DATABASE_URL="$$($(DEVSTACK) pg-up)" $(PY) -m services.common.auth list

revoke-token: install
	@DATABASE_URL="$$($(DEVSTACK) pg-up)" $(PY) -m services.common.auth revoke "$(ID)"

## The audit trail: make audit ARGS="--household <uuid>", ARGS="--label funders --since 2026-01-01",
## ARGS=purge (older than ALFI_AUDIT_RETENTION_DAYS, 400 by default)
audit: install
	@DATABASE_URL="$$($(DEVSTACK) pg-up)" $(PY) -m services.common.audit $(ARGS)

## With the stack running (make run): send a realistic 2022-2024, print the 2023 bilan.
demo: install
	$(PY) -m demo

## Operations on the local stack (KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL to point elsewhere).
dead-letters: install
	@eval "$$($(DEVSTACK) env)" && $(PY) -m services.common.deadletters list

## make redrive TOPIC=alfi.casework.commands.dlq OFFSETS="0:12 3:4"
redrive: install
	@eval "$$($(DEVSTACK) env)" && $(PY) -m services.common.deadletters redrive --topic "$(TOPIC)" \
	  $(foreach o,$(OFFSETS),--offset $(o))

## Consumers' positions per partition beside Kafka's log start and end; GAP where stopped.
positions: install
	@eval "$$($(DEVSTACK) env)" && $(PY) -m services.common.positions list

rebuild: install
	@eval "$$($(DEVSTACK) env)" && $(PY) -m services.stats.rebuild

## A past year's bilan frozen once (figures, Kafka offsets, generation, SHA-256): make freeze YEAR=2023.
## make verify-bilan YEAR=2023 recomputes it at those offsets; exit 1 if the hash differs.
freeze: install
	@eval "$$($(DEVSTACK) env)" && $(PY) -m services.stats.freeze freeze "$(YEAR)"

verify-bilan: install
	@eval "$$($(DEVSTACK) env)" && $(PY) -m services.stats.freeze verify "$(YEAR)"

## Households without contact for ALFI_RETENTION_DAYS (730): make retention ARGS=--dry-run lists
## them; without --dry-run they are erased (ARGS="--days N --today YYYY-MM-DD" too).
retention: install
	@DATABASE_URL="$$($(DEVSTACK) pg-up)" $(PY) -m services.intake.retention $(ARGS)

## With the stack running (make run): the bilan opened from a report link in headless Chromium,
## as a screenshot and printed to A4 PDF (.local/bilan/); make print-bilan YEAR=2023 [PROGRAMME=fnavdl]
print-bilan: install
	@command -v chromium >/dev/null || $(MAKE) --no-print-directory chromium
	$(PY) deploy/local/print_bilan.py "$(YEAR)" $(if $(PROGRAMME),--programme "$(PROGRAMME)")

## Headless Chromium and pdftoppm for print-bilan: Debian's packages.
chromium:
	@if [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium poppler-utils fonts-dejavu-core >/dev/null; \
	else echo "chromium is missing: install Debian's chromium and poppler-utils (sudo apt-get install chromium poppler-utils)" >&2; exit 1; fi

## Benchmarks (not tests): each prints its figures beside its target.
bench: install
	$(PY) -m bench

## Fault injection on a stack of its own (kill -9 of services, broker and PostgreSQL crashes
## under a seeded load), then exact figures and no event lost or doubled. Under 10 minutes.
## make chaos CHAOS_ARGS="--cluster --seed 7" (python -m chaos --help lists the options)
chaos: install
	$(PY) -m chaos $(CHAOS_ARGS)

## Every test: unit, integration (real Kafka and PostgreSQL) and end-to-end.
## pytest's exit code 5 (no test collected) is a failure, not a pass.
test: install helm
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no test" >&2; exit 1; fi; exit $$rc

test-unit: install
	$(PY) -m pytest tests/unit -q

infra: install
	$(DEVSTACK) up

infra-down:
	$(DEVSTACK) down

status:
	@python3 deploy/local/devstack.py status

## Re-export contracts/schemas/ and contracts/asyncapi.json after changing a model.
schemas: install
	$(PY) -m alfi_contracts.export

## Helm, built once from its Go module into .local/ (tests/unit/test_deploy_helm.py renders
## deploy/helm/alfi with it). Cold (no Go module or build cache) it takes minutes; then nothing.
HELM_VERSION := v3.22.0
HELM := .local/helm/$(HELM_VERSION)/helm
helm: $(HELM)

$(HELM):
	@command -v go >/dev/null || { echo "Go is required to build Helm (https://go.dev/dl/)" >&2; exit 1; }
	GOBIN=$(CURDIR)/$(dir $(HELM)) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

## Re-vendor the operators' CRD schemas the chart is validated against (network: the Go
## module proxy and Maven Central; Java and Maven for Strimzi's): deploy/helm/crd-schemas/.
crd-schemas: install
	$(PY) deploy/helm/crd-schemas/fetch.py
