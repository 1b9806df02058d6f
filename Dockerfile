# syntax=docker/dockerfile:1
# consent-ledger container image.
#
#   docker build -t consent-ledger:local .
#   docker run --rm -p 8080:8080 -e KAFKA_BOOTSTRAP_SERVERS=host.docker.internal:9092 consent-ledger:local
#
# Builder: rdkafka compiles its bundled librdkafka with configure/make (cmake kept for the
# crate's optional cmake-build feature). BuildKit cache mounts keep the cargo registry and
# target dir between builds; the binary is copied out of the cache mount.

FROM rust:1-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential pkg-config libssl-dev zlib1g-dev cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin consent-ledger \
    && install -m 0755 target/release/consent-ledger /usr/local/bin/consent-ledger

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin ledger \
    && mkdir -p /data \
    && chown ledger:ledger /data
COPY --from=builder /usr/local/bin/consent-ledger /usr/local/bin/consent-ledger
ENV CONSENT_LEDGER_DATA_DIR=/data
# /data is created owned by the non-root user before VOLUME, so a fresh named volume
# mounted there inherits that ownership.
VOLUME /data
USER ledger
EXPOSE 8080
ENTRYPOINT ["consent-ledger"]
CMD ["run", "--listen", "0.0.0.0:8080"]
