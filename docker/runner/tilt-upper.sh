#!/bin/sh
# The runner's entrypoint: the env's repo at its branch, a kind cluster on the sidecar's docker,
# then `tilt up` with the env's Tiltfile. ephctrl sets the variables from the env ConfigMap
# (validated: an allow-listed URL, a branch name, a relative path without "..").
set -eu
: "${TILT_UPPER_REPO:?}" "${TILT_UPPER_BRANCH:?}" "${TILT_UPPER_PATH:?}"
echo "cloning ${TILT_UPPER_REPO} at ${TILT_UPPER_BRANCH}"
git clone --depth 1 --branch "${TILT_UPPER_BRANCH}" -- "${TILT_UPPER_REPO}" /tmp/repo
# ephctrl reads Tilt's API with this token (Tilt reuses the file when it is there).
if [ -n "${TILT_UPPER_TOKEN:-}" ]; then
  mkdir -p "${HOME}/.tilt-dev"
  umask 077
  printf '%s' "${TILT_UPPER_TOKEN}" > "${HOME}/.tilt-dev/token"
fi
echo "waiting for docker"
until docker info >/dev/null 2>&1; do sleep 1; done
echo "creating the cluster"
ctlptl create cluster kind --registry=ctlptl-registry
cd /tmp/repo
echo "tilt up -f ${TILT_UPPER_PATH}"
exec tilt up --file "${TILT_UPPER_PATH}" --host 0.0.0.0 --port 10350 --stream
