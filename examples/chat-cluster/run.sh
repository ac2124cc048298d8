#!/usr/bin/env bash
# Starts the whole chat-cluster example on this machine: two gateways (gw1.toml, gw2.toml), the
# chat-rooms business process linked to both, and the balancer in front serving the page on
# http://127.0.0.1:8000/. Ctrl-C stops them all; so does any one of them stopping.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p wsgate -p wsgate-examples
bin=target/release
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"$bin/wsgate" --config examples/chat-cluster/gw1.toml &
"$bin/wsgate" --config examples/chat-cluster/gw2.toml &
WSGATE_WORKER_TOKEN=chat-cluster-dev-token \
  "$bin/chat-rooms" --gateway 127.0.0.1:8081,127.0.0.1:8091 &
node examples/chat-cluster/balancer.mjs --listen 127.0.0.1:8000 --gateways 127.0.0.1:8080,127.0.0.1:8090 &
wait -n
