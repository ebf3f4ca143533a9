# The two commands a newcomer needs:
#   make demo  - set up, start the lab cluster and switch it into DISTCC BUILD MODE
#   make test  - set up, start the lab cluster and run the whole test suite
# Also: make lab-up / lab-down / lab-status, make bench, make test-arm, make test-stock,
# make test-bookworm, make unit, make survey-docs, make settings-doc. LAB_SUITE=bookworm
# makes the lab's nodes Debian bookworm (default trixie, the base of today's Raspberry Pi OS).
# LAB_ARCH=arm64 (or armhf) runs every lab node under qemu-user emulation;
# LAB_WORKER_ARCHS=arm64,armhf sets the workers one by one.
# LAB_FLAVOR=stock makes the nodes look like stock Raspberry Pi OS Lite (short
# hostnames, a first user LAB_USER, default ada, instead of pi).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# LAB_WORKERS (default 2, or one per LAB_WORKER_ARCHS entry), LAB_ARCH and
# LAB_WORKER_ARCHS reach lab/ from the environment or the command line.
# CI and scripts never answer pyinfra's "Press enter" prompt.
export PYINFRA_YES := 1

PYINFRA := $(BIN)/pyinfra -y
LAB_INVENTORY := inventories/lab.py

.PHONY: demo test test-amd64 test-arm test-stock test-bookworm unit lab-test lock venv engine lab-image lab-up lab-down lab-status bench bench-build lint survey-docs settings-doc shellcheck

venv: $(VENV)/.installed

# Exact versions from constraints.txt, so that every demo and test run gets
# the same pyinfra, gevent and test tools; `make lock` refreshes it.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

# The newest versions that pyproject.toml's ranges admit, resolved in a
# scratch virtualenv and written to constraints.txt.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q -e '.[test,bench]'
	{ echo "# Exact versions for make demo and make test (pip install -c constraints.txt)."; \
	  echo "# Refresh with: make lock. pyproject.toml keeps the ranges for people who install the package."; \
	  .lock-venv/bin/pip freeze --all --exclude-editable | grep -v '^#'; } > constraints.txt
	rm -rf .lock-venv

engine:
	@./lab/ensure_engine.sh

lab-image: engine
	$(PYTHON) -m lab image

lab-up: engine
	$(PYTHON) -m lab up

lab-down: engine
	$(PYTHON) -m lab down

lab-status: engine
	$(PYTHON) -m lab status

demo: venv lab-up
	$(PYINFRA) $(LAB_INVENTORY) deploys/mode_switch.py
	$(PYINFRA) $(LAB_INVENTORY) deploys/cluster_distcc_validate.py
	$(PYINFRA) $(LAB_INVENTORY) deploys/cluster_distcc_smoketest.py

# The whole suite, on the lab's default release (trixie): unit and amd64 lab
# tests, the emulated ARM suite, the stock Raspberry Pi OS suite; then the
# bookworm compatibility suite (with a cluster of mixed releases).
test: test-amd64 test-arm test-stock test-bookworm

# tests/lab and tests/lab_arm drive labs of the usual (fqdn) flavor with user
# pi, whatever LAB_FLAVOR or LAB_USER a demo left set; and every suite but the
# bookworm one runs the default release, whatever LAB_SUITE a demo left set.
test-amd64 test-arm: export LAB_FLAVOR := fqdn
test-amd64 test-arm: export LAB_USER :=
test-amd64 test-arm test-stock: export LAB_SUITE :=
test-amd64 test-arm test-stock: export LAB_WORKER_SUITES :=

# Unit tests and the amd64 lab suite (the faster subset without emulation).
test-amd64: venv shellcheck lab-up
	$(BIN)/pytest tests

# The emulated ARM suite (tests/lab_arm): its own lab (LAB_ARM_PREFIX,
# LAB_ARM_SUBNET) of an arm64 builder with arm64 and armhf workers, then an
# all-armhf one, under qemu-user (installed and registered here when needed).
test-arm: venv
	LAB_ARCH=arm64 LAB_WORKER_ARCHS=arm64,armhf ./lab/ensure_engine.sh
	$(BIN)/pytest -m arm tests/lab_arm

# The stock Raspberry Pi OS suite (tests/lab_stock): its own lab
# (LAB_STOCK_PREFIX, LAB_STOCK_SUBNET) of LAB_FLAVOR=stock nodes, a builder and
# 2 workers, from k3s mode with pods through build mode, reboots and back.
test-stock: venv engine
	$(BIN)/pytest -m stock tests/lab_stock

# The release before trixie (tests/lab_bookworm): its own lab (LAB_BOOKWORM_PREFIX,
# LAB_BOOKWORM_SUBNET) of bookworm nodes through build mode, a reboot and k3s
# mode, then with one worker on trixie.
test-bookworm: venv engine
	$(BIN)/pytest -m bookworm tests/lab_bookworm

unit: venv shellcheck
	$(BIN)/pytest tests/unit

lint: venv
	$(BIN)/ruff check .

# The survey that validation sends every host, laid out to be read
# (docs/survey-builder.sh, docs/survey-worker.sh); a unit test fails until
# they are regenerated after a section's command changes.
survey-docs: venv
	$(BIN)/python -m deploys.library.survey_docs

# shellcheck on those files, with Debian's shellcheck (installed here as root
# on Debian): each finding that stands is explained where its command is
# defined. make unit and make test run it before pytest.
shellcheck:
	@./lab/ensure_shellcheck.sh
	shellcheck -s sh docs/survey-builder.sh docs/survey-worker.sh

# docs/settings.md, the table of every setting, rendered from their
# declarations in deploys/library/settings.py; a unit test fails until it is
# regenerated after a declaration changes.
settings-doc: venv
	$(BIN)/python -c 'from deploys.library.settings import write_settings_doc; write_settings_doc()'

# BENCH_ARCH=arm64 benchmarks an emulated arm64 lab (bench/results-arm64.*);
# the engine step then registers qemu-user for it.
bench: venv
	$(if $(filter arm64,$(BENCH_ARCH)),LAB_ARCH=arm64 )./lab/ensure_engine.sh
	$(BIN)/python bench/run.py

# A whole tinyconfig kernel build at 0, 1, 2 and 4 workers, every node held
# to the same CPU slice (bench/build.py says how; BENCH_CPUS, BENCH_SIZES,
# BENCH_REPEAT). matplotlib (the `bench` extra) draws its plot.
bench-build: venv engine
	$(BIN)/pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/build.py
