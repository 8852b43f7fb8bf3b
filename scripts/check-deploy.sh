#!/usr/bin/env bash
# The checks of deploy/ and docker/ (the test command runs this): every overlay renders with
# kubectl's own kustomize, validates against the Kubernetes schemas of the oldest supported
# version (kubernetes-validate, strict: unknown fields are errors), and passes checkov's
# security lint, as do the Dockerfiles. What checkov still finds is justified in
# deploy/.checkov.yaml or in a checkov.io/skip annotation on the object. That the overlays also
# apply with `kubectl apply --server-side` is a test: devcluster/tests/deploy.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Python tools in a virtualenv of their own, pinned, so they never disturb the machine's.
venv=target/deploy-tools
if ! "$venv/bin/checkov" --version >/dev/null 2>&1 \
  || ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  echo "installing checkov and kubernetes-validate into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    checkov==3.3.30 kubernetes-validate==1.37.0
fi

rendered=target/rendered
rm -rf "$rendered"
mkdir -p "$rendered"
for overlay in deploy/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$rendered/$name.yaml"
  echo "rendered $overlay: $(grep -c '^kind:' "$rendered/$name.yaml") objects"
done

# The oldest Kubernetes version the binaries are built for (README: supported clusters).
"$venv/bin/kubernetes-validate" --kubernetes-version 1.33.0 --strict --quiet "$rendered"/*.yaml
echo "schemas: every object is valid for Kubernetes 1.33"

# --skip-download: checkov would otherwise ask Prisma Cloud for guidelines (no network here).
checkov=("$venv/bin/checkov" --skip-download --quiet --compact --config-file deploy/.checkov.yaml)
"${checkov[@]}" --framework kubernetes --directory "$rendered"
"${checkov[@]}" --framework dockerfile --file docker/Dockerfile --file docker/runner/Dockerfile
echo "checkov: no finding left unjustified"
