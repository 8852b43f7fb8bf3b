#!/usr/bin/env bash
# ephgateway against nginx with wrk (gateway/benches/proxy.rs): installs wrk and nginx from
# Debian's packages when missing, then runs the benchmark, which prints its figures.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
exec cargo bench -p ephgateway --bench proxy
