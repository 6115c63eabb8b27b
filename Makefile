# Vigil. `make run` and `make test` work on a fresh Debian 12 machine (as root): each installs
# what is missing first (scripts/setup.sh). `make help` lists the targets.
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)
SWIFT ?= swift

.PHONY: help setup generate bundles check-generated build release image run probe test test-unit test-kernels bench soak fuzz sanitize clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

setup: ## install build/run dependencies (libbpf, bpftool), mount tracefs and bpffs
	@scripts/setup.sh

generate: setup ## regenerate vmlinux.h, the BPF objects (the sensors' and the example bundles'), embedded tables, the syscall table (Swift, docs/syscalls.md) and docs/fields.md
	scripts/generate.sh
	$(SWIFT) build --product vigil
	.build/debug/vigil fields --markdown > docs/fields.md

bundles: setup ## build the example program bundles' objects (examples/bundles/*/NAME.bpf.o; part of make generate)
	VIGIL_GENERATE=bundles scripts/generate.sh

check-generated: setup ## fail when committed generated files are stale
	scripts/check-generated.sh

build: setup ## debug build
	$(SWIFT) build

release: setup ## release build of the vigil binary
	$(SWIFT) build -c release --product vigil

image: ## container image FROM scratch (the release binary and its libraries; tags vigil:<tree>, vigil:latest; no registry; starts dockerd if needed)
	@scripts/setup.sh --image
	scripts/build-image.sh

run: release ## probe the kernel, then run the daemon in the foreground with the default rules, printing alerts
	.build/release/vigil probe
	.build/release/vigil daemon

test: check-generated ## every test: other kernels under qemu, the container image, then unit, kernel and Docker tests (starts a Docker engine when none answers)
	@scripts/setup.sh --test
	scripts/test-kernels.sh
	scripts/build-image.sh
	$(SWIFT) test

test-unit: setup ## swift test only
	$(SWIFT) test

test-kernels: ## the variant chains on Debian's 6.1 and 6.12 kernels under qemu
	@scripts/setup.sh --test
	scripts/test-kernels.sh

soak: ## the daemon for SOAK_MINUTES (30) at 100k opens/s with the default rules and a webhook action: memory growth, lost events, CPU per event (issue 16 section 6); writes the soak block of BENCHMARKS.md
	@scripts/setup.sh --bench
	$(SWIFT) build -c release --product vigil
	scripts/soak.sh --no-build --minutes $(or $(SOAK_MINUTES),30) > .build/soak.md; status=$$?; scripts/bench-section.sh soak .build/soak.md; exit $$status

fuzz: ## libFuzzer + ASan over the parsers of untrusted input, FUZZ_SECONDS (60) per target; crashes in fuzz/crashes/ fail it (FUZZING.md)
	scripts/fuzz.sh

sanitize: ## the unit tests built and run under AddressSanitizer (.build-asan) and ThreadSanitizer (.build-tsan), VIGIL_REQUIRE_BPF=1; not part of test (FUZZING.md)
	@scripts/setup.sh --test
	scripts/sanitize.sh

bench: ## benchmarks (ring, userspace path, syscall events, the syscalls sensor vs bpftrace/perf trace/strace, sensors vs peers, the open hook, the syscalls sensor's getpid cost and seccomp recording's fentry and sys_enter cost on 6.1/6.12 under qemu, rules, daemon, file integrity, seccomp recording); replaces the generated blocks of BENCHMARKS.md
	@scripts/setup.sh --bench
	for p in vigil vigil-bench vigil-rules-bench; do $(SWIFT) build -c release --product $$p || exit 1; done
	.build/release/vigil-bench > .build/bench-ring.md
	scripts/bench-section.sh vigil-bench .build/bench-ring.md
	.build/release/vigil-bench --pipeline > .build/bench-pipeline.md
	scripts/bench-section.sh pipeline .build/bench-pipeline.md
	.build/release/vigil-bench --syscalls > .build/bench-syscall-pipeline.md
	scripts/bench-section.sh syscall-pipeline .build/bench-syscall-pipeline.md
	scripts/bench-syscalls.sh > .build/bench-syscalls.md
	scripts/bench-section.sh syscalls .build/bench-syscalls.md
	scripts/bench-syscalls.sh --loops udp --section syscalls-udp > .build/bench-syscalls-udp.md
	scripts/bench-section.sh syscalls-udp .build/bench-syscalls-udp.md
	scripts/bench-syscalls.sh --loops tcp --section syscalls-tcp > .build/bench-syscalls-tcp.md
	scripts/bench-section.sh syscalls-tcp .build/bench-syscalls-tcp.md
	scripts/bench-syscalls.sh --loops dns --section syscalls-dns > .build/bench-syscalls-dns.md
	scripts/bench-section.sh syscalls-dns .build/bench-syscalls-dns.md
	scripts/bench-sensors.sh > .build/bench-sensors.md
	scripts/bench-section.sh sensors .build/bench-sensors.md
	scripts/bench-kernels.sh --no-build > .build/bench-kernels.md
	scripts/bench-section.sh kernels .build/bench-kernels.md
	scripts/bench-kernels.sh --syscalls --no-build > .build/bench-getpid-kernels.md
	scripts/bench-section.sh getpid-kernels .build/bench-getpid-kernels.md
	scripts/bench-kernels.sh --seccomp --no-build > .build/bench-seccomp-kernels.md
	scripts/bench-section.sh seccomp-kernels .build/bench-seccomp-kernels.md
	.build/release/vigil-rules-bench > .build/bench-rules.md
	scripts/bench-section.sh rules .build/bench-rules.md
	scripts/bench-daemon.sh --no-build > .build/bench-daemon.md
	scripts/bench-section.sh daemon .build/bench-daemon.md
	scripts/bench-fim.sh --no-build > .build/bench-fim.md
	scripts/bench-section.sh fim .build/bench-fim.md
	scripts/bench-seccomp.sh --no-build > .build/bench-seccomp.md
	scripts/bench-section.sh seccomp .build/bench-seccomp.md

clean:
	rm -rf .build
