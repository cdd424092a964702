#!/usr/bin/env bash
# Debian packages the test suite runs for real: installs the missing ones with apt-get when
# run as root (`make test` and `.ci/run` call this), otherwise stops with one line naming them.
#   redis-server  the scale-out, dedup and journal tests start real Redis servers
#   chromium      the simulator's browser test (tests/e2e/test_browser.py)
#   nginx-light   runs deploy/nginx.conf for real (tests/test_nginx.py)
#   postgresql    the proactive store's tests start a real PostgreSQL (tests/support/postgres.py)
set -euo pipefail

# command on PATH (or in /usr/sbin, where Debian puts nginx)  ->  Debian package
declare -A PACKAGE=([redis-server]=redis-server [chromium]=chromium [nginx]=nginx-light)

missing=()
for command in "${!PACKAGE[@]}"; do
  if ! command -v "$command" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$command" ]; then
    missing+=("${PACKAGE[$command]}")
  fi
done
# PostgreSQL's server programs live off PATH, in /usr/lib/postgresql/<version>/bin.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$EUID" -ne 0 ]; then
  echo "make test needs the Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y --no-install-recommends ${missing[*]})" >&2
  exit 1
fi
echo "Installing the Debian packages the tests need: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
