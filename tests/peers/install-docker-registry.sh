#!/usr/bin/env bash
#! Installs the OCI registry peer: Debian's `docker-registry` (the CNCF
#! distribution registry, v2), which plugin provisioning publishes to and
#! pulls from. Idempotent and non-interactive; run as root. `--check` only
#! reports what is missing (see lib.sh).
#!
#! Only the binary is used: `testkit::registry::Registry` starts
#! `/usr/bin/docker-registry serve <own config.yml>` on a free 127.0.0.1 port
#! with filesystem storage in a temp dir. The packaged service (its default
#! configuration listens on every interface with htpasswd auth) is never
#! started or relied on: lib.sh's apt_install keeps maintainer scripts from
#! starting it, and this script stops and disables it if it runs anyway.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

mapfile -t missing < <(missing_debs docker-registry)
check_report "${missing[@]}"

if ((${#missing[@]})); then
    echo "install-docker-registry: installing docker-registry (Debian; the OCI registry the provisioning tests start on 127.0.0.1)"
    apt_install docker-registry
fi
# Never leave the packaged service listening on every interface.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled docker-registry >/dev/null 2>&1; then
    echo "install-docker-registry: disabling the packaged docker-registry service (tests start their own on 127.0.0.1)"
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

echo "install-docker-registry: $(/usr/bin/docker-registry --version 2>&1 | head -1) at /usr/bin/docker-registry"
