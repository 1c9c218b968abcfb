#!/usr/bin/env python3
"""A webhook receiver for the outbound webhook tests: verifies every POST with
the Standard Webhooks reference library (PyPI `standardwebhooks`) against each
given secret, appends what it got to a JSON-lines log (before answering), and
answers from a script.

usage: receiver.py PORT_FILE LOG_FILE SECRETS_FILE SCRIPT
  SECRETS_FILE  whsec_ secrets, one a line, read at each request (the test
                changes it when it rotates); each request is verified with each
  SCRIPT   comma-separated answers, one per request, the last repeating:
           200 | 410 | 5xx | 5xx+ra<seconds> (with Retry-After) | hang (never answers)
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

port_file, log_file, secrets_file, script = sys.argv[1:5]
script = script.split(",")
lock = threading.Lock()
count = [0]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with open(secrets_file) as f:
            secrets = [s.strip() for s in f if s.strip()]
        verified = []
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified.append(True)
            except WebhookVerificationError:
                verified.append(False)
        with lock:
            index = count[0]
            count[0] += 1
            action = script[min(index, len(script) - 1)]
            record = {
                "index": index,
                "at": time.time(),
                "id": headers.get("webhook-id"),
                "timestamp": headers.get("webhook-timestamp"),
                "signature": headers.get("webhook-signature"),
                "verified": verified,
                "body": body.decode("utf-8", "replace"),
                "action": action,
            }
            with open(log_file, "a") as log:
                log.write(json.dumps(record) + "\n")
                log.flush()
        if action == "hang":
            time.sleep(3600)
            return
        status, _, retry_after = action.partition("+ra")
        self.send_response(int(status))
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
