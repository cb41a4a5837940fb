# Makefile - the common commands over CMake.
#   make run      build and run the tour (examples/tour.c); needs no Check
#   make test     install what the tests need (Debian), build, run them
#   make bench    benchmarks beside Python's multiprocessing and raw Linux
#   make install PREFIX=/usr/local   (library, header, man pages, .pc)
#   make asan     the tests built with AddressSanitizer and UBSan
#   make format / make format-check / make man-check
# WERROR=ON makes warnings errors (CI sets it); users build without it.
# TESTS=AUTO builds the tests when Check is there; make test needs them.
BUILD ?= build
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
WERROR ?= OFF
TESTS ?= AUTO
CMAKE_FLAGS ?=

.PHONY: all build configure run test deps bench install asan format \
	format-check man man-check clean

all: build

# Configure every time: CMake redoes whatever a failed or interrupted
# configure left half done (and finds Check once it is installed), and is
# quick when nothing changed. A build directory is never trusted as is.
configure:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DMP_WERROR=$(WERROR) -DMP_TESTS=$(TESTS) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/examples/tour

deps:
	sh scripts/install-deps.sh

test: deps
	$(MAKE) build TESTS=ON
	ctest --test-dir $(BUILD) --output-on-failure --no-tests=error \
	    -j $(JOBS)

bench:
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DMP_TESTS=OFF \
	    -DMP_WERROR=$(WERROR)
	cmake --build build-bench -j $(JOBS)
	python3 bench/run.py build-bench --shared --csv build-bench/bench.csv

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMP_SANITIZE=ON \
	    -DMP_TESTS=ON -DMP_WERROR=$(WERROR)
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan \
	    --output-on-failure --no-tests=error -j $(JOBS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

# The man pages are generated from include/multiproc.h and checked in.
man:
	python3 scripts/gen-man.py

man-check:
	python3 scripts/gen-man.py --check

clean:
	rm -rf $(BUILD) build-asan build-bench
