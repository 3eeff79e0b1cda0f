#!/usr/bin/env bash
# apt-get install PACKAGES from Debian's packages, quietly, without starting their services: a
# policy-rc.d that refuses service starts is in place while they install (the tests run their
# own nginx, registry and Prometheus on free loopback ports).
set -euo pipefail

policy=/usr/sbin/policy-rc.d
added_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  added_policy=1
fi
trap '[ -n "$added_policy" ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
