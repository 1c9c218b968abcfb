#!/usr/bin/env bash
# Installs every real peer the test suite talks to (Debian packages, PyPI,
# npm). Idempotent; run as root. Each script says what it installs and why.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for script in "$here"/install-*.sh; do
    [[ "$(basename "$script")" == install-all.sh ]] && continue
    echo "== $(basename "$script")"
    bash "$script"
done
