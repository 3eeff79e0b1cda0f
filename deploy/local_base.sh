#!/usr/bin/env bash
# A local base image for the Dockerfile, made from Debian's packages where no public image
# registry is reachable: debootstrap bookworm (minbase) with python3.11 and its venv module,
# imported with `docker import`. Prints the image's tag on stdout.
#
#   docker build --network host --build-arg BASE_IMAGE="$(deploy/local_base.sh)" -t posture .
#
# Cached by content: the tag ends with a hash of this script, the mirror and the machine's
# extra CA certificates, so it is built once per machine (a few minutes) and found at once
# afterwards. The machine's own CAs (/usr/local/share/ca-certificates) go into the base and
# PIP_CERT points pip at the system bundle: where outbound HTTPS passes a TLS proxy, pip in
# `docker build` must trust what the host trusts. The public python:3.11-slim default needs
# none of this.
set -euo pipefail

MIRROR=${POSTURE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
NAME=posture-base

hash=$( { cat "$0"; echo "$MIRROR $SUITE $PACKAGES"; cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } \
  | sha256sum | cut -c1-12)
tag="$NAME:$SUITE-$hash"

exec 9>/var/lock/posture-base.lock
flock 9  # one build at a time; a second caller waits, then finds the image
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

root=$(mktemp -d /var/tmp/posture-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "building $tag with debootstrap (once per machine)" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >&2
cat > "$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
# What the image does not need: package caches, docs, man pages.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  - "$tag" >/dev/null
echo "$tag"
