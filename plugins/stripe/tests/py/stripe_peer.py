"""Stripe's official Python library as a peer for the stripe plugin's tests: its encoder, signer, verifier and client.

Usage (stdin carries the payload or parameters; results go to stdout):
  stripe_peer.py encode                         JSON list of dicts -> JSON list of form bodies
  stripe_peer.py sign SECRET TIMESTAMP          payload -> Stripe-Signature header
  stripe_peer.py construct-event SECRET HEADER  payload -> "evt_id event.type", exit 1 if refused
  stripe_peer.py create-payment-intent BASE_URL API_KEY VERSION   JSON params -> JSON of the PaymentIntent

Exit 3 means stripe-python is missing: run tests/peers/install-stripe-python.sh.
"""

import json
import sys
from urllib.parse import urlencode

try:
    import stripe

    try:
        from stripe._encode import _api_encode
    except ImportError:  # older 1x releases kept it in the requestor
        from stripe._api_requestor import _api_encode
except ImportError as error:  # pragma: no cover - reported to the Rust test
    print(
        f"stripe-python is not importable ({error}); run tests/peers/install-stripe-python.sh",
        file=sys.stderr,
    )
    sys.exit(3)


def wire_body(params):
    # Exactly what stripe/_api_requestor.py puts on the wire for a v1 POST.
    encoded = urlencode(list(_api_encode(params)))
    return encoded.replace("%5B", "[").replace("%5D", "]")


def main(argv):
    command = argv[1]
    stdin = sys.stdin.buffer.read()
    if command == "encode":
        cases = json.loads(stdin)
        print(json.dumps([wire_body(case) for case in cases]))
    elif command == "sign":
        secret, timestamp = argv[2], int(argv[3])
        header = stripe.WebhookSignature.generate_signature_header(
            stdin.decode("utf-8"), secret, timestamp
        )
        print(header)
    elif command == "construct-event":
        secret, header = argv[2], argv[3]
        try:
            event = stripe.Webhook.construct_event(stdin, header, secret)
        except stripe.SignatureVerificationError as error:
            print(f"refused: {error.user_message or error}")
            return 1
        print(f"{event.id} {event.type}")
    elif command == "create-payment-intent":
        base_url, api_key, version = argv[2], argv[3], argv[4]
        client = stripe.StripeClient(
            api_key,
            base_addresses={"api": base_url},
            stripe_version=version,
            max_network_retries=0,
        )
        service = getattr(client, "v1", client).payment_intents
        try:
            intent = service.create(params=json.loads(stdin))
        except stripe.StripeError as error:
            print(f"{type(error).__name__}: {error.user_message or error}")
            return 1
        print(json.dumps({"id": intent.id, "status": intent.status}))
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
