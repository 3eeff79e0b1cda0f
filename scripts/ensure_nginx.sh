#!/usr/bin/env bash
# Install nginx from the Debian packages when it is missing. The deploy tests run their own
# nginx (-p/-c, free loopback ports); the system service is never started: a policy-rc.d
# that refuses service starts is in place while the package installs.
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
bash "$(dirname "$0")/apt_install.sh" nginx
[ -x /usr/sbin/nginx ]
