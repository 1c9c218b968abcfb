#!/usr/bin/env bash
#! Installs the Stripe peer: Stripe's official Python library (PyPI `stripe`), used to cross-check the stripe plugin's form encoder and webhook signer/verifier.
#! Idempotent: pip leaves an installed `stripe>=10` alone. Run as root.
#! `--check` only reports what is missing (see lib.sh).
#! The tests in plugins/stripe/tests/ run `python3` and fail with a pointer here when it is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

stripe_ok() {
    python3 -c 'import sys, stripe; sys.exit(0 if int(stripe.VERSION.split(".")[0]) >= 10 else 1)' 2>/dev/null
}

mapfile -t missing < <(missing_debs python3)
if ! stripe_ok; then
    missing+=("stripe>=10(PyPI)")
fi
check_report "${missing[@]}"

if stripe_ok; then
    echo "stripe-python: already installed ($(python3 -c 'import stripe; print(stripe.VERSION)'))"
    exit 0
fi
if [[ -n "$(missing_debs python3)" ]]; then
    echo "stripe-python: installing python3 (Debian)"
    apt_install python3
fi
echo "stripe-python: installing stripe>=10 (PyPI)"
pip_install 'stripe>=10'
python3 -c 'import stripe; print("stripe-python: installed", stripe.VERSION)'
