#!/usr/bin/env bash
#! Installs Debian's `prometheus` package: the real Prometheus server the
#! daemon's metrics test scrapes `GET /metrics` with (issue 16). Idempotent
#! and non-interactive; run as root. `--check` only reports what is missing
#! (see lib.sh).
#!
#! The test starts its own server on a free 127.0.0.1 port with its own
#! configuration and storage in a temporary directory; the packaged service
#! is never started (lib.sh's apt_install forbids maintainer scripts to
#! start services), and nothing uses a system instance.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

debs=(prometheus)

mapfile -t missing < <(missing_debs "${debs[@]}")
check_report "${missing[@]}"

if ((${#missing[@]})); then
    echo "install-prometheus: installing ${missing[*]} (Debian), for the metrics scrape test"
    apt_install "${missing[@]}"
else
    echo "install-prometheus: prometheus already installed"
fi

# The package's unit may have been enabled; a system instance on :9090 is
# not what the tests talk to, so keep it stopped when systemd runs at all.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl stop prometheus 2>/dev/null || true
fi

command -v prometheus >/dev/null || { echo "install-prometheus: prometheus missing after install" >&2; exit 1; }
echo "install-prometheus: $(prometheus --version 2>&1 | head -n1) at $(command -v prometheus)"
