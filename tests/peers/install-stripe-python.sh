#!/usr/bin/env bash
#! Installs the Stripe peer: Stripe's official Python library (PyPI `stripe`), used to cross-check the stripe plugin's form encoder and webhook signer/verifier.
# Idempotent: pip leaves an installed `stripe>=10` alone.
# Used by `.ci/run`; the tests in plugins/stripe/tests/ run `python3` and fail with a pointer here when it is missing.
set -euo pipefail

python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "stripe-python: $python is missing; install Python 3.8+ first (Debian: apt-get install -y python3 python3-pip)" >&2
    exit 1
fi

if "$python" -c 'import sys, stripe; sys.exit(0 if int(stripe.VERSION.split(".")[0]) >= 10 else 1)' 2>/dev/null; then
    echo "stripe-python: already installed ($("$python" -c 'import stripe; print(stripe.VERSION)'))"
    exit 0
fi

# Debian's system Python refuses global installs (PEP 668) unless told otherwise.
"$python" -m pip install --quiet 'stripe>=10' 2>/dev/null \
    || "$python" -m pip install --quiet --break-system-packages 'stripe>=10'

"$python" -c 'import stripe; print("stripe-python: installed", stripe.VERSION)'
