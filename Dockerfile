# The Rollgate operator image: one static musl binary on an empty base, running as 65532.
#
#   docker build -t rollgate:0.1.0 .
#   docker run --rm rollgate:0.1.0 --version
#
# The chart's default image is rollgate:<appVersion>; push the image to your registry and
# set image.repository. scripts/check-dockerfile lints this file (hadolint), runs its cargo
# command in exactly the context .dockerignore admits, and builds and runs the runtime stage
# with podman. See docs/install.md.

ARG RUST_VERSION=1.95

# ---- build: a static x86_64 musl binary --------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build

# musl-gcc for the crates that compile C (ring).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl

WORKDIR /src
# .dockerignore admits only what the build needs: the workspace manifests, the lock file,
# src/, benches/ (the manifest declares a bench), crates/ and sdk/rust/.
COPY . .

# The cache mounts keep the registry and target/ between builds; the binary is copied out
# of target/ because a cache mount is not part of the layer. Stripping the debug info
# (symbols stay, so backtraces keep function names) takes the binary from ~65 MB to ~5 MB.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --locked --release --target x86_64-unknown-linux-musl --bin rollgate \
 && mkdir -p /out/etc \
 && cp target/x86_64-unknown-linux-musl/release/rollgate /out/rollgate \
 && /out/rollgate --version \
 && echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' >/out/etc/passwd \
 && echo 'nonroot:x:65532:' >/out/etc/group

# ---- runtime: nothing but the binary, CA certificates and a passwd entry -----------
FROM scratch

COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /etc/passwd
COPY --from=build /out/etc/group /etc/group
COPY --from=build /out/rollgate /rollgate

LABEL org.opencontainers.image.title="rollgate" \
      org.opencontainers.image.description="Kubernetes operator for metric-gated feature-flag rollouts" \
      org.opencontainers.image.source="https://github.com/rollgate/rollgate" \
      org.opencontainers.image.licenses="Apache-2.0"

# Non-root, numeric so that runAsNonRoot can verify it without a passwd lookup.
USER 65532:65532
# /metrics, /healthz and /readyz (--metrics-addr).
EXPOSE 8080
ENTRYPOINT ["/rollgate"]
CMD ["operator"]
