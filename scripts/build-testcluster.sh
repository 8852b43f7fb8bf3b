#!/usr/bin/env bash
# Builds the real control plane (testcluster/: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok from the upstream Go modules pinned in its go.mod/go.sum) into
# target/testcluster. go build caches by content: a warm run takes seconds, a cold one about
# 4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || { echo "Go is needed to build testcluster/ (the real control plane)" >&2; exit 1; }
version=v1.36.3
mkdir -p target
cd testcluster
go build -o ../target/testcluster -ldflags "\
  -X k8s.io/component-base/version.gitVersion=${version} \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=36" .
