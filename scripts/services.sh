#!/usr/bin/env bash
# Start the local PostgreSQL and Redis the integration tests use, if they are down.
# The machines here start both before a session; this only revives a stopped one.
# It also installs Debian's chromium (browser tests) and prometheus (promtool: alert-rule and
# dashboard tests) when they are missing; those tests skip, saying why, where apt cannot.
set -u
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
# apt_install COMMAND PACKAGE WHY [APT_OPTION]: install Debian's PACKAGE when COMMAND is missing.
apt_install() {
  if ! command -v "$1" >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing Debian's $2 for $3"
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${4:-} "$2" >/dev/null 2>&1 ||
      (apt-get update -q >/dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${4:-} "$2" >/dev/null 2>&1)) ||
      echo "could not install $2; $3 will skip"
  fi
}
apt_install chromium chromium "the browser tests"
apt_install promtool prometheus "the alert-rule and dashboard tests" --no-install-recommends
exit 0
