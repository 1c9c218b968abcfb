#!/usr/bin/env bash
#! Installs every real peer the test suite and the demo talk to (Debian
#! packages, PyPI, npm). Idempotent; run as root (`cargo xtask test` runs it
#! by itself when it runs as root). Each script says what it installs and why.
#!
#! Run through sudo by a user, Prism is left out: it goes into the user's
#! cargo target directory, and `cargo xtask test` installs it there as that
#! user (it needs no root once npm is installed). `--check` runs every
#! script's check and exits 1 when anything is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for script in "$here"/install-*.sh; do
    name="$(basename "$script")"
    [[ "$name" == install-all.sh ]] && continue
    if [[ "$name" == install-prism.sh && -n "${SUDO_USER:-}" && "${SUDO_USER}" != root ]]; then
        echo "== $name: skipped under sudo; \`cargo xtask test\` installs Prism as $SUDO_USER"
        continue
    fi
    if [[ "${1:-}" == --check ]]; then
        bash "$script" --check || status=1
        continue
    fi
    echo "== $name"
    bash "$script"
done
exit "${status:-0}"
