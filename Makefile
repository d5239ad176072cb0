# fernwart — two commands: `make demo` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages that tests need as real servers or reference clients.
#   mosquitto: the MQTT broker; snmpd/snmp: net-snmp agent and snmpget/snmpbulkwalk;
#   postgresql: server binaries (initdb/pg_ctl) for the PostgreSQL fixture.
DEB_TEST := mosquitto mosquitto-clients snmpd snmp postgresql
# Only for benchmarks: the reference poller.
DEB_BENCH := prometheus-snmp-exporter

.PHONY: demo test lint venv system-deps bench-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Install the Debian packages only when a binary is missing (CI machines may lack them).
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v mosquitto_sub >/dev/null || missing="$$missing mosquitto-clients"; \
	command -v snmpd >/dev/null || [ -x /usr/sbin/snmpd ] || missing="$$missing snmpd"; \
	command -v snmpget >/dev/null || missing="$$missing snmp"; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

bench-deps: system-deps
	@command -v prometheus-snmp-exporter >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_BENCH))

demo: $(STAMP)
	$(BIN)/fernwart demo

# Two workers: the suite mostly waits (brokers paused, daemons started, waves in test windows):
# one process took 16 min of wall time for 9 min of CPU. worksteal keeps the long end-to-end
# tests, collected last, from queueing behind one worker.
test: $(STAMP) system-deps
	$(BIN)/pytest -n 2 --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy agent collector controller firmware_catalog lab fernwart_cli runtime

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
