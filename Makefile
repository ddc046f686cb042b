# Thin wrappers over cargo; see README.md.
#   make run SHARDS=4                          demo: scrape the built-in target, ids 0..100000
#   make run URL='https://host/log?id={id}' IDS=0..5000000 SHARDS=8 CONCURRENCY=512 OUTPUT=out.csv
#   make test                                  all tests (unit + integration), test servers installed if missing
#   make test-fast                             all but those that need root (namespaces, mounts, Slurm)
#   make bench                                 ringscrape vs wrk/oha/hey/ffuf/aiohttp on local nginx
#   make wheel                                 target/wheels/ringscrape-*.whl (the binary + the Python API)

SHELL       := /bin/bash
BIN         := target/release/ringscrape
SHARDS      ?= $(shell nproc)
CONCURRENCY ?= 256
IDS         ?= 0..100000
OUTPUT      ?= results.csv
URL         ?=
# Extra flags for `ringscrape run`, e.g. ARGS='--resume' or ARGS='--timeout 5'. `make run` names
# config/default.toml (`run` itself reads only --config, else the user's config directory).
ARGS        ?=

.PHONY: build run test test-fast test-python wheel bench fmt lint audit clean

# A fresh clone compiles for several minutes (about ten on two cores) before anything runs: say so.
build:
	@[ -x $(BIN) ] || echo "make: building ringscrape (release) — the first build takes several minutes" >&2
	cargo build --release

# Without URL: start `ringscrape serve` on a free loopback port, scrape it, stop it.
# The demo replaces its own output file; a real target never does unless ARGS has --overwrite.
run: build
ifeq ($(strip $(URL)),)
	@log=$$(mktemp); \
	$(BIN) serve --listen 127.0.0.1:0 > $$log & serve_pid=$$!; \
	trap 'kill $$serve_pid 2>/dev/null; rm -f $$log' EXIT; \
	for _ in $$(seq 100); do grep -q listening $$log && break; sleep 0.05; done; \
	addr=$$(sed -n 's/^listening on //p' $$log); \
	if [ -z "$$addr" ]; then echo "make run: the demo server did not start" >&2; exit 1; fi; \
	echo "demo target: $$addr (ringscrape serve)"; \
	$(BIN) run --config config/default.toml --url "$$addr/log?id={id}" --ids $(IDS) --shards $(SHARDS) \
		--concurrency $(CONCURRENCY) --output $(OUTPUT) --overwrite $(ARGS); \
	rc=$$?; echo "rows in $(OUTPUT): $$(($$(wc -l < $(OUTPUT)) - 1))"; exit $$rc
else
	$(BIN) run --config config/default.toml --url '$(URL)' --ids $(IDS) --shards $(SHARDS) \
		--concurrency $(CONCURRENCY) --output $(OUTPUT) $(ARGS)
endif

# Both install the test servers first when they are missing (tests/setup.sh). `test` is every
# test (CI, as root): those marked #[ignore = "needs root: …"] too. `test-fast` leaves those
# out, and RINGSCRAPE_TEST_TIER=fast makes a test that needs root but is not marked fail
# (tests/common/tier.rs). Its integration tests mostly wait on servers, so FAST_THREADS run at
# a time; then TIMED_MODULES, 2 at a time as in `test`: their figures (req/s and a knee, peak
# memory, a token refreshed within its 2 s, a page updated every second) are what others'
# load would distort.
FAST_THREADS  ?= 6
TIMED_MODULES := tune:: rate:: memory:: auth:: dashboard::
FAST_ENV      := RINGSCRAPE_TEST_TIER=fast PATH="/usr/sbin:$$PATH"
test:
	bash tests/setup.sh
	PATH="/usr/sbin:$$PATH" cargo test --release -- --test-threads=2 --include-ignored
	$(MAKE) test-python

test-fast:
	bash tests/setup.sh
	$(FAST_ENV) cargo test --release --lib --bins
	$(FAST_ENV) cargo test --release --doc
	$(FAST_ENV) cargo test --release --test integration -- --test-threads=$(FAST_THREADS) \
		$(addprefix --skip ,$(TIMED_MODULES))
	$(FAST_ENV) cargo test --release --test integration -- --test-threads=2 $(TIMED_MODULES)
	$(MAKE) test-python

# The wheel (pyproject.toml, docs/python.md): maturin packs target/release/ringscrape, built by
# cargo first with the same profile and flags, so maturin compiles nothing again (about 2 s).
wheel: build
	@python3 -m maturin --version >/dev/null 2>&1 || python3 -m pip install -q maturin
	python3 -m maturin build --release --out target/wheels

# The Python API's tests (tests/python/), in a new virtual environment with the wheel installed.
test-python: wheel
	PATH="/usr/sbin:$$PATH" bash tests/python/run.sh

bench: build
	bash bench/run.sh

fmt:
	cargo fmt

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	python3 .ci/import_cycles.py src

# Known vulnerabilities in Cargo.lock, offline: the team's RustSec copy when it is there, else
# the one in .ci/ (needs `cargo install cargo-audit --locked`; .ci/run installs it).
ADVISORY_DB := $(firstword $(wildcard ../shared/advisory-db) .ci/advisory-db)
audit:
	cargo audit --db $(ADVISORY_DB) --no-fetch

clean:
	cargo clean
	rm -f results.csv
