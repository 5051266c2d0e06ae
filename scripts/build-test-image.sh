#!/usr/bin/env bash
# Builds the container image the Molecule scenarios run in, once per machine:
# no registry is reachable here, so the image is a Debian bookworm debootstrap
# imported into podman. Cached: when the image exists this exits at once.
#
#   bash scripts/build-test-image.sh          # ensure localhost/debian-bookworm:ansible
#   LLMSCALE_TEST_IMAGE=localhost/x:y bash scripts/build-test-image.sh
#
# The image has python3 (for Ansible) and systemd (so scenarios can boot
# /sbin/init with `systemd: always` and check real unit state); scenarios that
# need neither just run it with the default command.
set -euo pipefail

image=${LLMSCALE_TEST_IMAGE:-localhost/debian-bookworm:ansible}
suite=${LLMSCALE_TEST_SUITE:-bookworm}
mirror=${LLMSCALE_TEST_MIRROR:-http://deb.debian.org/debian}
packages=python3,systemd,systemd-sysv,dbus

if podman image exists "$image"; then
  exit 0
fi

# Several scenarios (and engineers) may ask at once: build it only once.
lock="${TMPDIR:-/tmp}/llmscale-test-image.lock"
exec 9>"$lock"
flock 9
if podman image exists "$image"; then
  exit 0
fi

for tool in debootstrap podman tar; do
  command -v "$tool" >/dev/null || { echo "build-test-image: $tool is missing (run make setup)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "build-test-image: debootstrap needs root" >&2; exit 1; }

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/llmscale-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

echo "build-test-image: debootstrap $suite ($packages) into $rootfs" >&2
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
  tail -n 20 "$rootfs.log" >&2
  rm -f "$rootfs.log"
  exit 1
fi
rm -f "$rootfs.log"
# debootstrap leaves the package cache behind; the image does not need it.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

echo "build-test-image: importing as $image" >&2
tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/sleep", "infinity"]' - "$image" >/dev/null
podman image exists "$image"
