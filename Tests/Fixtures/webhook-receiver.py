#!/usr/bin/env python3
"""A real HTTP receiver for the spool tests: appends every POST as one JSON line
{"path", "alert_id" (the X-Vigil-Alert-Id header), "body"} to OUTPUT, then answers 200
(mode `ok`) or never answers (mode `hang`: the request arrived, the answer is lost).
Usage: webhook-receiver.py PORT OUTPUT ok|hang"""
import http.server
import json
import sys
import time

port, output, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(output, "a") as out:
            out.write(json.dumps({"path": self.path, "alert_id": self.headers.get("X-Vigil-Alert-Id"),
                                  "body": body.decode("utf-8", "replace")}) + "\n")
        if mode == "hang":
            time.sleep(3600)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
