#!/usr/bin/env bash
#! Installs the Standard Webhooks peer: the specification's reference Python library (PyPI `standardwebhooks`), which verifies the daemon's outbound webhook signatures.
#! Idempotent: pip leaves an installed `standardwebhooks` alone. Run as root.
#! `--check` only reports what is missing (see lib.sh).
#! The outbound webhook tests in isp-daemon/tests/daemon/webhooks_out.rs run `python3` and fail with a pointer here when it is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

standardwebhooks_ok() {
    python3 -c 'from standardwebhooks.webhooks import Webhook' 2>/dev/null
}

mapfile -t missing < <(missing_debs python3)
if ! standardwebhooks_ok; then
    missing+=("standardwebhooks(PyPI)")
fi
check_report "${missing[@]}"

if standardwebhooks_ok; then
    echo "standardwebhooks: already installed"
    exit 0
fi
if [[ -n "$(missing_debs python3)" ]]; then
    echo "standardwebhooks: installing python3 (Debian)"
    apt_install python3
fi
echo "standardwebhooks: installing standardwebhooks (PyPI)"
pip_install 'standardwebhooks'
python3 -c 'from standardwebhooks.webhooks import Webhook; print("standardwebhooks: installed")'
