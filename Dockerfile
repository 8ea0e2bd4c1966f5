# MTE Relay: the container image (docs/operations.md, "Container image").
#
# Build arguments (every base image is one, so a mirror or a pinned digest can be
# named without editing this file):
#   RUST_IMAGE     the builder: a Rust toolchain on Debian 12
#   RUNTIME_IMAGE  the runtime: distroless cc (glibc, CA roots, the nonroot user)
#   BINARY_FROM    "compiled" builds the relay and its embedded adapters in the builder
#                  stage (the default); "prebuilt" takes an `mte-relay` binary from the
#                  root of the build context, as the test suite and a CI that has
#                  already built and tested the binary do
# The stage is chosen by name (`FROM ${BINARY_FROM}`), so the build must skip unused
# stages: BuildKit and buildah (podman) do; Docker's legacy builder does not.
ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BINARY_FROM=compiled

# checkov:skip=CKV_DOCKER_7: the base images are build arguments, tagged by their defaults
FROM ${RUST_IMAGE} AS compiled
WORKDIR /src
COPY . .
# The Rust example adapters are built for wasm32-wasip2 by the runtime's build script
# and embedded in the binary (the Python example is not embedded).
RUN rustup target add wasm32-wasip2 \
    && cargo build --release --locked -p mte-relay --bin mte-relay \
    && mkdir -p /out \
    && cp target/release/mte-relay /out/mte-relay

FROM scratch AS prebuilt
COPY mte-relay /out/mte-relay

# hadolint ignore=DL3006
FROM ${BINARY_FROM} AS relay-binary

FROM ${RUNTIME_IMAGE}
COPY --from=relay-binary /out/mte-relay /mte-relay
# distroless's nonroot user; numeric, so no passwd lookup is needed.
USER 65532:65532
# The data port (PORT) and the admin port (ADMIN_PORT: /healthz, /readyz, /metrics).
EXPOSE 8080 9090
# Liveness, not readiness: a relay whose Redis is away is alive (it serves
# pass-through routes and recovers by itself) and must not be restarted for it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/mte-relay", "health"]
ENTRYPOINT ["/mte-relay"]
CMD ["serve"]
