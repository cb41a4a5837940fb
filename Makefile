# Makefile - the common commands over CMake.
#   make run      build and run the tour (examples/tour.c)
#   make test     install what the tests need (Debian), build, run them
#   make bench    benchmarks beside Python's multiprocessing and raw Linux
#   make install PREFIX=/usr/local
#   make asan     the tests built with AddressSanitizer and UBSan
#   make format / make format-check
BUILD ?= build
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build run test deps bench install asan format format-check clean

all: build

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/examples/tour

deps:
	sh scripts/install-deps.sh

test: deps build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

bench:
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMP_TESTS=OFF
	cmake --build build-bench -j $(JOBS)
	python3 bench/run.py build-bench --csv build-bench/bench.csv

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMP_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan \
	    --output-on-failure -j $(JOBS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan build-bench
