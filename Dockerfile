# wsgate: the gateway and the example business processes in one small image.
#   docker build -t wsgate .
#   docker run --rm -p 8080:8080 wsgate --ws-addr 0.0.0.0:8080
# Multi-stage: build with the Rust toolchain, run on a slim Debian with the binaries only.

FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p wsgate -p wsgate-examples \
 && mkdir /out \
 && cp target/release/wsgate target/release/echo target/release/chat /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# Nobody needs root to hold sockets above 1024.
USER 65534:65534
# Client WebSockets, worker links, HTTP API + metrics + console, gRPC API.
EXPOSE 8080 8081 8082 8083
ENTRYPOINT ["wsgate"]
