#!/usr/bin/env bash
# Install nginx from the Debian packages when it is missing. The deploy tests run their own
# nginx (-p/-c, free loopback ports); the system service is never started: a policy-rc.d
# that refuses service starts is in place while the package installs.
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
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
apt-get install -y -qq --no-install-recommends nginx >/dev/null
[ -x /usr/sbin/nginx ]
