#!/usr/bin/env python3
"""bench/webhook-receiver.py: the webhook end of scripts/bench-daemon.sh's alert latency.

    webhook-receiver.py PORT OUT

Listens on 127.0.0.1:PORT; for each POST (an alert in Falco's JSON shape) appends to OUT the
receive time minus the event's kernel time (output_fields["evt.rawtime"], ns since the epoch),
in nanoseconds, one per line, and answers 200."""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, out = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the connection between alerts, as falcosidekick's and most receivers' servers do
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        received = time.time_ns()
        try:
            raw = int(json.loads(body)["output_fields"]["evt.rawtime"])
            with open(out, "a") as f:
                f.write(f"{received - raw}\n")
        except (ValueError, KeyError, TypeError):
            pass
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
