# SPDX-License-Identifier: MIT
# The two commands: `make run` and `make test`. Everything else is a step of
# theirs or a slow suite kept out of CI.
JOBS ?= $(shell nproc)
PORT ?= 8000
HOST ?= 127.0.0.1
REPO ?= examples/models
DATA ?= data
CTEST = ctest --output-on-failure -j $(JOBS)

.PHONY: all deps deps-test build build-asan build-tsan run test test-fast conformance fuzz \
        soak bench models clean

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

build-tsan:
	CC=clang cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQV_TSAN=ON >/dev/null
	cmake --build build-tsan -j $(JOBS)

# Installs, builds, and serves the example repository on $(HOST):$(PORT).
run: deps build
	./build/quiver serve --repo $(REPO) --data $(DATA) --host $(HOST) --port $(PORT)

# The concurrent parts (engine, monitor, router, store) also run under TSan.
TSAN_TESTS = unit_test_(engine|monitor|pick|feedback|bandit|store)

# Installs, builds (plain, ASan+UBSan, TSan) and runs every suite: all of them
# in the plain and ASan builds, the concurrent parts' unit tests under TSan.
test: deps-test build build-asan build-tsan
	cd build && $(CTEST) || true
	cd build-asan && $(CTEST) || true
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1 $(CTEST) -L unit -R '$(TSAN_TESTS)' || true
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

bench: build
	bash scripts/install-deps.sh bench
	bash bench/run.sh

clean:
	rm -rf build build-asan build-tsan
