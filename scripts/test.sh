#!/usr/bin/env bash
# The project's test command (README "Run the tests"): installs what a fresh machine lacks, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# kubectl drives devcluster in the integration tests (the same client operators use).
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
# git: ephdash discovers branches and Tiltfiles with it, and its tests serve repositories with
# `git http-backend`.
command -v git >/dev/null 2>&1 || need_apt+=(git)
# python3: the tests' Tiltfiles serve their apps with Python's http.server.
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# Headless Chromium and its WebDriver for the dashboard's browser test (dash/tests/browser.rs).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# wrk and nginx: the gateway's benchmark measures it against nginx (smoke-run below).
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest

# The manifests and Dockerfiles: rendered, validated against the Kubernetes schemas, linted.
./scripts/check-deploy.sh

# The real control plane the realcluster tests run against, and the real Tilt, oauth2-proxy and
# OIDC provider of the realprograms tests, built once before they start.
time ./scripts/build-testcluster.sh
time ./scripts/build-testprograms.sh

# The doc tests nextest does not run, then every test of every crate (unit, integration, property
# tests).
cargo test --workspace --doc
cargo nextest run --workspace --no-fail-fast

# Every benchmark built and run once in its smoke mode (`cargo test` passes no `--bench`: tiny
# sizes, figures printed, none asserted), so a benchmark that no longer runs fails the build.
# None may leave a process behind (the gateway's once left nginx's workers listening).
./scripts/no-leftover-processes.sh "nginx ephgateway ephdash ephctrl" \
  cargo test --workspace --bench '*'

