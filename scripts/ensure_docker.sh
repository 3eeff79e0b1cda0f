#!/usr/bin/env bash
# The deployment tests' tools, from Debian's packages when missing: the Docker engine
# (docker.io), a registry (docker-registry), debootstrap (the local base image), Prometheus
# with promtool, and docker-compose (validates deploy/compose.yaml). No package's service is
# started (a policy-rc.d refuses them while they install); the tests run their own registry
# and Prometheus on free loopback ports. dockerd is started when it is not answering, with no
# bridge network: every container here uses the host's network (loopback), and nothing gets a
# private-range bridge address.
set -euo pipefail

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)

if [ ${#missing[@]} -gt 0 ]; then
  bash "$(dirname "$0")/apt_install.sh" "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
  log=/var/log/posture-dockerd.log
  # setsid: dockerd outlives this script (and make), like the other services.
  setsid dockerd --bridge=none --iptables=false --ip6tables=false >"$log" 2>&1 < /dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not answer in 60 s: see $log" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
fi
