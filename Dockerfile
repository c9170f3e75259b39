# retract-server (and retract-migrate) as a container image. Build from the repository root:
#   docker build -t retract-server .
# Not built in CI (no container runtime there); see docs/deployment.md.

# --- build: the release binaries from the locked dependency set ----------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p retract-server --bin retract-server \
    && cargo build --release --locked -p retract-migrations --bin retract-migrate

# --- run: a small Debian with CA certificates (Microsoft's endpoints are TLS), non-root ----
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin retract
COPY --from=build /src/target/release/retract-server /usr/local/bin/retract-server
COPY --from=build /src/target/release/retract-migrate /usr/local/bin/retract-migrate
USER 10001
# gRPC, gRPC-Web, health, reflection and the consent callback share this port.
EXPOSE 50051
ENV RETRACT_LISTEN_ADDR=0.0.0.0:50051 \
    RETRACT_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/retract-server"]
