# SPDX-License-Identifier: MIT
# The two commands: `make run` and `make test`. Everything else is a step of
# theirs or a slow suite kept out of CI.
JOBS ?= $(shell nproc)
PORT ?= 8000
GRPC_PORT ?= 8001
HOST ?= 127.0.0.1
REPO ?= examples/models
DATA ?= data
CTEST = ctest --output-on-failure -j $(JOBS)

# make install: PREFIX (default /usr/local) and DESTDIR as usual.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/quiver
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),/etc,$(PREFIX)/etc)
BUILD_DIR ?= build

.PHONY: all deps deps-test build build-asan build-tsan build-fuzz run test test-fast \
        conformance fuzz fuzz-short soak bench models clean install install-only uninstall \
        cluster

all: build

deps:
	bash scripts/install-deps.sh run

deps-test:
	bash scripts/install-deps.sh run test

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j $(JOBS)

build-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DQV_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)

# The concurrent parts under TSan: every unit test (engine: reconcile/sync,
# batching, workers; router: picks, feedback ring, bandit; monitor shards;
# store; controller and statistics), the store contract suite and the fault
# suite (backends that fail or stall, allocation failure across threads) and
# the fuzz corpus replays (HTTP-thread decode and worker hand-off).
# By label, so a new suite of these directories is included the day it lands.
TSAN_LABELS = unit|contract|fault|fuzz

build-tsan:
	CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQV_TSAN=ON \
	    -DQV_WITH_ONNX=OFF >/dev/null
	cmake --build build-tsan -j $(JOBS) --target tsan_suites

# libFuzzer (clang, ASan+UBSan) on every parser of outside bytes: the ONNX
# loader (fuzz_load) and the targets of tests/fuzz (docs/security.md).
FUZZ_TARGETS = kserve tfs config route rollout feedback tokens http grpc infer_fast
build-fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DQV_SANITIZE=ON -DQV_FUZZ=ON \
	    -DQV_WITH_XGBOOST=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzz_load $(addprefix fuzz_,$(FUZZ_TARGETS))

# Every target for FUZZ_SECONDS each (FUZZ=kserve for one, or a list).
FUZZ_SECONDS ?= 600
FUZZ ?=
fuzz: build-fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh $(FUZZ)

# The short slice that make test runs: each target 10 seconds from a fixed
# seed and a fresh corpus (CTest label fuzz-slice in build-fuzz, so the
# summary counts them); a crash, leak or sanitizer report fails it.
fuzz-short: build-fuzz
	cd build-fuzz && $(CTEST) -L fuzz-slice

# A local cluster: a throwaway PostgreSQL, three nodes and nginx in front, on
# loopback ports; Ctrl-C stops everything (docs/cluster.md).
cluster: build
	bash scripts/install-deps.sh run cluster
	bash deploy/local-cluster.sh build/quiver $(REPO)

# Installs, builds, and serves the example repository on $(HOST):$(PORT).
run: deps build
	./build/quiver serve --repo $(REPO) --data $(DATA) --host $(HOST) --port $(PORT) \
	    --grpc-port $(GRPC_PORT)

# Installs, builds (plain, ASan+UBSan, TSan) and runs every suite: all of them
# in the plain and ASan builds (the fault suite and the fuzz corpus replays
# included), the TSAN_LABELS suites under TSan, and a short libFuzzer slice of
# every fuzz target (a crash fails the slice); the last line counts them all.
test: deps-test build build-asan build-tsan
	cd build && $(CTEST) || true
	cd build-asan && $(CTEST) || true
	cd build-tsan && OMP_NUM_THREADS=1 \
	    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	    $(CTEST) -L '$(TSAN_LABELS)' || true
	$(MAKE) fuzz-short || true
	@bash scripts/summary.sh build build-asan build-tsan build-fuzz

# The 1000-cycle load/unload loop under ASan and LeakSanitizer.
soak: build-asan
	QV_SOAK_CYCLES=1000 ./build-asan/unit_test_engine

test-fast: build
	cd build && $(CTEST)

conformance: build
	./build/tests/onnx/onnx_conformance --all

models:
	bash scripts/install-deps.sh models
	/usr/bin/python3 scripts/make_models.py
	/usr/bin/python3 scripts/make_onnx_models.py

bench: build
	bash scripts/install-deps.sh bench
	bash bench/run.sh

# Builds, then installs the binary, the man page quiver(1) (made by the binary
# from its own help texts), the systemd unit, its settings file (kept when it
# exists) and the docs.
install: build
	$(MAKE) install-only

# Installs what $(BUILD_DIR) holds, without building.
install-only:
	@test -x $(BUILD_DIR)/quiver || { echo "install: no $(BUILD_DIR)/quiver; run make build" >&2; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSTEMDDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/default $(DESTDIR)$(DOCDIR)/docs
	install -m 0755 $(BUILD_DIR)/quiver $(DESTDIR)$(BINDIR)/quiver
	$(BUILD_DIR)/quiver help --man > $(BUILD_DIR)/quiver.1
	install -m 0644 $(BUILD_DIR)/quiver.1 $(DESTDIR)$(MANDIR)/man1/quiver.1
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    packaging/quiver.service.in > $(BUILD_DIR)/quiver.service
	install -m 0644 $(BUILD_DIR)/quiver.service $(DESTDIR)$(SYSTEMDDIR)/quiver.service
	test -e $(DESTDIR)$(SYSCONFDIR)/default/quiver || \
	    install -m 0644 packaging/quiver.default $(DESTDIR)$(SYSCONFDIR)/default/quiver
	install -m 0644 README.md LICENSE $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/

# Removes what install put there, except the settings file (edited by hand).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/quiver $(DESTDIR)$(MANDIR)/man1/quiver.1 \
	    $(DESTDIR)$(SYSTEMDDIR)/quiver.service
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf build build-asan build-tsan build-fuzz
