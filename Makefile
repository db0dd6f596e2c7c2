# Thin wrapper over CMake: installs what is missing, builds out of tree, runs.
# `make run` and `make test` work as root on a fresh Debian 12 machine.

DEBS := build-essential cmake pkg-config libuv1-dev libwslay-dev libjemalloc-dev \
        libcmocka-dev libssl-dev libdeflate-dev zlib1g-dev libhiredis-dev libhttp-parser-dev liburing-dev redis-server redis-tools prometheus gnuplot-nox python3 \
        python3-websockets iproute2 procps systemd strace curl clang libclang-rt-14-dev
# JWT (common/jwt.c): jansson parses; libjwt and PyJWT (with cryptography, for RS/ES) check
# our tokens in the tests, whose keys the openssl CLI makes.
DEBS += libjansson-dev libjwt-dev python3-jwt python3-cryptography openssl
JOBS ?= $(shell nproc)
BUILD ?= build
ARGS ?=

.PHONY: all deps build run demo test test-dev test-asan test-tsan test-fuzz clean format

all: build

# dpkg first: apt-get update runs only when something is missing. node and npm (Node's ws is a
# client in test/integration/test_deflate.py; npm installs it from the npm registry at test
# time) count as present when the commands exist: a nodejs from another repository bundles npm,
# and Debian's npm package would conflict with it.
deps:
	@missing=""; for p in $(DEBS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	{ command -v node && command -v npm; } >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    if [ "$$(id -u)" != 0 ]; then echo "need root to install:$$missing" >&2; exit 1; fi; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# No -Werror here: a newer compiler's new warning must not stop a user from running it.
build: deps
	cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release -DWSP_WERROR=OFF
	cmake --build $(BUILD)/release -j $(JOBS)

run: build
	$(BUILD)/release/server/wspush $(ARGS)

# The whole experiment in under a minute: 10,000 connections in a private network namespace,
# 3 broadcasts, then the report; fails unless every connection got every broadcast (needs root
# for ip netns). test/bench runs it small against the binaries under test: DEMO_BUILD= skips
# the release build, DEMO_ARGS passes run-local.sh options (e.g. -o DIR --netns NAME).
DEMO_CONNS ?= 10000
DEMO_BROADCASTS ?= 3
DEMO_SERVER ?= $(BUILD)/release/server/wspush
DEMO_BENCH ?= $(BUILD)/release/bench/wspush-bench
DEMO_BUILD ?= build
DEMO_ARGS ?=
demo: $(DEMO_BUILD)
	bench/run-local.sh --conns $(DEMO_CONNS) --broadcasts $(DEMO_BROADCASTS) \
	    --server $(DEMO_SERVER) --bench $(DEMO_BENCH) $(DEMO_ARGS)

# The whole suite: a -Werror release build, a debug build under ASan+UBSan, the threaded tests
# under TSan. DEBS holds every tool a test uses, so inside `make test` a skip is a failure
# unless test/SKIPS lists the test (what it needs that make cannot install: root, a kernel
# feature); the run ends with the count of skipped tests.
test: deps test-dev test-asan test-tsan test-fuzz
	@/usr/bin/python3 test/ctest_skips.py --summary $(BUILD)/dev/skipped.txt \
	    $(BUILD)/asan/skipped.txt $(BUILD)/tsan/skipped.txt
	@echo "all test configurations passed"

# ctest, then the skip accounting: each run's skipped tests go to skipped.txt in its build dir.
CTEST := /usr/bin/python3 $(CURDIR)/test/ctest_skips.py --skips $(CURDIR)/test/SKIPS \
         --record skipped.txt --

# Optimised like the shipped binary: some warnings only appear at -O3.
test-dev: deps
	cmake -S . -B $(BUILD)/dev -DCMAKE_BUILD_TYPE=Release -DWSP_WERROR=ON
	cmake --build $(BUILD)/dev -j $(JOBS)
	cd $(BUILD)/dev && $(CTEST) --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(BUILD)/asan -DCMAKE_BUILD_TYPE=Debug -DWSP_WERROR=ON -DWSP_SANITIZER=address,undefined
	cmake --build $(BUILD)/asan -j $(JOBS)
	cd $(BUILD)/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(CTEST) --output-on-failure -j $(JOBS)

test-tsan: deps
	cmake -S . -B $(BUILD)/tsan -DCMAKE_BUILD_TYPE=Debug -DWSP_WERROR=ON -DWSP_SANITIZER=thread
	cmake --build $(BUILD)/tsan -j $(JOBS)
	cd $(BUILD)/tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/test/tsan.supp \
	    $(CTEST) --output-on-failure -j $(JOBS) -L threaded

# Each libFuzzer target (clang, ASan+UBSan) for a bounded FUZZ_SECONDS from the seed corpus; every
# build also replays the seeds (unit.fuzz_*). Longer runs: test/fuzz/run.sh TARGET SECONDS.
FUZZ_TARGETS := upgrade frame ipc utf8 channels admin pmd inflate jwt tlsrec tlshs auth framed tlsconn handover
# 10 s a target: a smoke run inside CI's 20 minutes; the long campaigns are in
# docs/BENCHMARKS.md section 5.
FUZZ_SECONDS ?= 10
test-fuzz: deps
	@mkdir -p $(BUILD); for t in $(FUZZ_TARGETS); do \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	    WSP_FUZZ_BUILD=$(BUILD)/fuzz test/fuzz/run.sh $$t $(FUZZ_SECONDS) >$(BUILD)/fuzz-$$t.log 2>&1 \
	        || { tail -40 $(BUILD)/fuzz-$$t.log; echo "fuzz: $$t FAILED"; exit 1; }; \
	    grep -E "^Done|#[0-9]+.*DONE" $(BUILD)/fuzz-$$t.log | tail -1; \
	done

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# --- Deployment kit (deploy/, docs/TUNING.md) ----------------------------------------------
# The container image and its smoke test stay out of `make test`: they need buildah and
# take a while. The image is built from its own tree without tests, so a test that does not
# compile never blocks an image. buildah's vfs driver and chroot isolation work without
# fuse-overlayfs or an OCI runtime.
IMAGE ?= localhost/wspush:latest
BUILDAH ?= buildah --storage-driver vfs
IMAGE_DEBS := buildah

.PHONY: image-deps image image-test

image-deps:
	@$(MAKE) --no-print-directory deps DEBS="$(IMAGE_DEBS)"

# Prints the image's size; the previous image of the same tag is removed once replaced.
image: deps image-deps
	cmake -S . -B $(BUILD)/image -DCMAKE_BUILD_TYPE=Release -DWSP_BUILD_TESTS=OFF
	cmake --build $(BUILD)/image -j $(JOBS) --target wspush wspush-bench wspush-entry
	deploy/stage-rootfs.sh $(BUILD)/image/context $(BUILD)/image/server/wspush \
	    $(BUILD)/image/deploy/wspush-entry
	@old=$$($(BUILDAH) images -q $(IMAGE) 2>/dev/null || true); \
	$(BUILDAH) bud --isolation chroot -f deploy/Containerfile -t $(IMAGE) $(BUILD)/image/context && \
	new=$$($(BUILDAH) images -q $(IMAGE)) && \
	if [ -n "$$old" ] && [ "$$old" != "$$new" ]; then $(BUILDAH) rmi "$$old" >/dev/null 2>&1 || true; fi
	@$(BUILDAH) images --format '{{.Name}}:{{.Tag}} {{.ID}} {{.Size}}' $(IMAGE)

# Runs the image with buildah run on loopback: 500 clients, a broadcast through Redis, drain.
image-test: image
	timeout 300 test/deploy/image-test.sh $(IMAGE) $(BUILD)/image/bench/wspush-bench

# Redis for deploy/compose.yaml where docker.io/library/redis cannot be pulled: Debian's
# redis-server, FROM scratch like the wspush image.
REDIS_IMAGE ?= localhost/wspush-redis:latest

.PHONY: redis-image compose-test

redis-image: deps image-deps
	deploy/stage-rootfs.sh --user redis:10002 $(BUILD)/redis-image/context /usr/bin/redis-server
	@old=$$($(BUILDAH) images -q $(REDIS_IMAGE) 2>/dev/null || true); \
	$(BUILDAH) bud --isolation chroot -f deploy/redis/Containerfile -t $(REDIS_IMAGE) \
	    $(BUILD)/redis-image/context && \
	new=$$($(BUILDAH) images -q $(REDIS_IMAGE)) && \
	if [ -n "$$old" ] && [ "$$old" != "$$new" ]; then $(BUILDAH) rmi "$$old" >/dev/null 2>&1 || true; fi
	@$(BUILDAH) images --format '{{.Name}}:{{.Tag}} {{.ID}} {{.Size}}' $(REDIS_IMAGE)

# deploy/compose.yaml under podman-compose, in a network namespace of its own: 200 clients
# per instance, one publish reaching both through Redis. runc: crun refuses hosts with
# hybrid cgroups; dnsname: service names on the compose network.
COMPOSE_DEBS := podman podman-compose runc golang-github-containernetworking-plugin-dnsname curl

compose-test: image redis-image
	@$(MAKE) --no-print-directory deps DEBS="$(COMPOSE_DEBS)"
	WSP_IMAGE=$(IMAGE) WSP_REDIS_IMAGE=$(REDIS_IMAGE) timeout 300 \
	    test/deploy/compose-test.sh deploy/compose.yaml $(BUILD)/image/bench/wspush-bench
