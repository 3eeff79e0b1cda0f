#!/bin/sh
# passwords.sh FILE USER PASSWORD [USER PASSWORD ...]: add users (posture's bridge, each device
# by its id) to a Mosquitto password file, hashed (mosquitto_passwd), created when missing.
set -eu
file=$1; shift
[ -f "$file" ] || : > "$file"
while [ $# -ge 2 ]; do
    mosquitto_passwd -b "$file" "$1" "$2"
    shift 2
done
chmod 600 "$file"
