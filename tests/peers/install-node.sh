#!/usr/bin/env bash
#! Installs Node.js and npm (Debian), which install-prism.sh needs to fetch
#! Prism. Idempotent and non-interactive; run as root. `--check` only
#! reports what is missing (see lib.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
check_report "${missing[@]}"

if ((${#missing[@]})); then
    echo "install-node: installing ${missing[*]} (Debian)"
    apt_install "${missing[@]}"
fi
echo "install-node: $(node --version 2>/dev/null || nodejs --version), npm $(npm --version)"
