#!/usr/bin/env bash
# Installs the external checkers the test suite drives into .tools/bin (and Debian packages
# when missing). Safe to re-run: each step is skipped when its tool is already present.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
tools="$here/.tools"
mkdir -p "$tools/bin"

apt_install() {
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    else
        echo "missing $*: install with: sudo apt-get install $*" >&2
        return 1
    fi
}

# promtool and prometheus: Debian's prometheus package ships both.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    echo "installing prometheus (promtool)"
    apt_install prometheus
    # the package starts a system service we do not want; tests start their own
    (service prometheus stop || pkill -x prometheus || true) >/dev/null 2>&1
fi

echo "tools ready in $tools/bin"
