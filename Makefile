# A thin wrapper: CMake builds the C code; scripts/ do the rest.
BUILD := build
JOBS := $(shell nproc 2>/dev/null || echo 2)

.PHONY: all setup build asan test demo clean

all: build

setup:
	@scripts/setup

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) >/dev/null

asan: setup
	@cmake -S . -B $(BUILD)/asan -DCMAKE_BUILD_TYPE=Debug -DMOLT_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)/asan -j $(JOBS) >/dev/null

test: build asan
	@scripts/test

demo: build
	@scripts/demo

clean:
	rm -rf $(BUILD)
