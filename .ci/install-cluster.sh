#!/usr/bin/env bash
# Install what the dev cluster needs, idempotently: Debian packages (prometheus, openssl,
# util-linux for unshare) and the Go-built binaries (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok, helm, kind-config-check), the
# ServiceMonitor CRD, the peers (scheduler-plugins' kube-scheduler, Kueue, their
# manifests) and the job controllers (training-operator, its PyTorchJob CRD) in
# ~/.cache/hybrid-scheduler. Binaries already in the cache are reused, so a second run on
# the same machine takes seconds; a cold machine builds for about 6-10 min, 20-40 min more
# for the peers, and about 3 min more for training-operator.
# Usage: .ci/install-cluster.sh [PYTHON]   (PYTHON: interpreter with the project installed)
set -euo pipefail

python="${1:-.venv/bin/python}"
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-cluster: need the Debian packages ${missing[*]}; run as root or:" \
             "sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! command -v go >/dev/null 2>&1 && [[ ! -x /usr/local/go/bin/go ]]; then
    echo "install-cluster: the Go toolchain (1.24 or newer) is needed to build the binaries" >&2
    exit 1
fi
"$python" -m hybrid_operator.cli dev-cluster build --peers --job-controllers
