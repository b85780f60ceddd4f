# SPDX-License-Identifier: MIT
# The two commands: `make run` and `make test`. Everything else is a step of
# theirs or a slow suite kept out of CI.
JOBS ?= $(shell nproc)
PORT ?= 8000
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
        conformance fuzz fuzz-short soak bench models clean install install-only uninstall

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

# The concurrent parts (engine, monitor, router, store, controller) under TSan.
TSAN_TARGETS = unit_test_engine unit_test_monitor unit_test_pick unit_test_feedback \
               unit_test_bandit unit_test_store unit_test_controller
TSAN_TESTS = unit_test_(engine|monitor|pick|feedback|bandit|store|controller)

build-tsan:
	CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQV_TSAN=ON \
	    -DQV_WITH_ONNX=OFF >/dev/null
	cmake --build build-tsan -j $(JOBS) --target $(TSAN_TARGETS)

# libFuzzer on the ONNX loader (clang, ASan+UBSan).
build-fuzz:
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DQV_SANITIZE=ON -DQV_FUZZ=ON \
	    -DQV_WITH_XGBOOST=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzz_load

FUZZ_SECONDS ?= 600
fuzz: build-fuzz
	mkdir -p build-fuzz/corpus
	./build-fuzz/tests/onnx/fuzz_load -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    build-fuzz/corpus tests/onnx/fuzz_corpus

# The short slice that make test runs: a fixed seed, a fresh corpus, 20 seconds.
fuzz-short: build-fuzz
	rm -rf build-fuzz/corpus-short && mkdir -p build-fuzz/corpus-short
	./build-fuzz/tests/onnx/fuzz_load -seed=1 -max_total_time=20 -rss_limit_mb=2048 \
	    build-fuzz/corpus-short tests/onnx/fuzz_corpus > build-fuzz/fuzz-short.log 2>&1; \
	rc=$$?; tail -2 build-fuzz/fuzz-short.log; exit $$rc

# Installs, builds, and serves the example repository on $(HOST):$(PORT).
run: deps build
	./build/quiver serve --repo $(REPO) --data $(DATA) --host $(HOST) --port $(PORT)

# Installs, builds (plain, ASan+UBSan, TSan) and runs every suite: all of them
# in the plain and ASan builds, the concurrent parts' unit tests under TSan,
# and a short libFuzzer run on the ONNX loader (a crash fails the target).
test: deps-test build build-asan build-tsan
	cd build && $(CTEST) || true
	cd build-asan && $(CTEST) || true
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 $(CTEST) -L unit -R '$(TSAN_TESTS)' || true
	$(MAKE) fuzz-short
	@bash scripts/summary.sh build build-asan build-tsan

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
