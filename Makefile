# One entry point for developer commands. The README's test command and .ci/run call `make test`.
.PHONY: quickstart demo test test-rust test-python test-e2e test-chart check-dockerfile check-packaging image-check fmt lint bench bench-peers crd reference schema ci

CARGO ?= cargo

# Shows Rollgate working on a fresh machine with no cluster (the README's quick start).
quickstart:
	scripts/quickstart

demo:
	scripts/demo

# Installs what the tests need (Debian packages, a Python venv, the local control plane) and runs every tier.
test:
	scripts/test-all

test-rust:
	$(CARGO) test --workspace

test-python:
	scripts/test-python

test-e2e:
	scripts/test-e2e

test-chart:
	scripts/test-chart

# hadolint, static rules, the cargo build in exactly the build context .dockerignore admits,
# and the runtime stage built and run with podman.
check-dockerfile:
	scripts/check-dockerfile

# cargo publish --dry-run of the three crates; the Python SDK's sdist and wheel, each installed
# in a fresh virtualenv and run against the shared vectors.
check-packaging:
	scripts/check-packaging

# Builds the static musl binary the image ships (slow: about 14 minutes on 2 cores).
image-check:
	scripts/check-dockerfile --build

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --manifest-path sdk/rust/peer-bench/Cargo.toml -- --check
	$(CARGO) clippy --manifest-path sdk/rust/peer-bench/Cargo.toml --all-targets -- -D warnings

# The ratio bench first: the SDK's speed claims are its ratios (docs/performance.md).
bench:
	$(CARGO) bench -p rollgate-sdk --bench ratios
	$(CARGO) bench -p rollgate-sdk --bench eval --bench client
	$(CARGO) bench -p rollgate --bench simulate

# Rollgate's targeting rules against Unleash's engine, in one run (a workspace of its own).
bench-peers:
	$(CARGO) bench --manifest-path sdk/rust/peer-bench/Cargo.toml

crd:
	$(CARGO) run -q --bin rollgate -- crd --kind featureflag > crds/featureflag.yaml
	$(CARGO) run -q --bin rollgate -- crd --kind segment > crds/segment.yaml
	cp crds/featureflag.yaml crds/segment.yaml charts/rollgate/crds/

# docs/reference.md, every field of the CRD's schema; `cargo test` fails when it is stale.
reference:
	$(CARGO) run -q --bin rollgate -- crd --format markdown > docs/reference.md

# The flag document's JSON Schema, from the SDK's types; `cargo test` fails when it is stale.
schema:
	$(CARGO) run -q -p rollgate-sdk --features schema --example flag-document-schema > sdk/flag-document.schema.json

ci: lint test
