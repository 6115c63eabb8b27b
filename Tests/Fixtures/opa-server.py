#!/usr/bin/env python3
"""An OPA-compatible REST server for the policy tests, evaluating Rego with a real engine
(PyPI's regopy, Microsoft's rego-cpp): `POST /v1/data/<path>` with `{"input": ...}` evaluates
`data.<path>` (slashes as dots) over the input with the loaded .rego modules and answers
`{"result": VALUE}`, or `{}` when the document is undefined, as OPA's data API does. Every
request is appended to OUTPUT as one JSON line {"path", "input", "answer"}.
Usage: opa-server.py PORT OUTPUT DELAY POLICY.rego... (PORT 0: any free port; the port is
printed on stdout once the server listens. DELAY: seconds to wait before answering). With
OPA_TLS_CERT and OPA_TLS_KEY (PEM files) in the environment it serves https."""
import http.server
import json
import os
import re
import ssl
import sys
import time

from regopy import Interpreter

port, output, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
modules = [(path, open(path).read()) for path in sys.argv[4:]]


def evaluate(path, input_value):
    interpreter = Interpreter()
    for name, source in modules:
        interpreter.add_module(name, source)
    interpreter.set_input_term(json.dumps(input_value))
    result = interpreter.query("x = data." + ".".join(path))
    if not result.ok():
        raise ValueError(str(result))
    if str(result) == "undefined":
        return {}
    return {"result": json.loads(str(result.binding("x")))}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        path = self.path.split("?")[0]
        if not path.startswith("/v1/data/"):
            return self.answer(404, {"code": "not_found", "message": path})
        segments = path[len("/v1/data/"):].strip("/").split("/")
        if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) for s in segments):
            return self.answer(400, {"code": "invalid_parameter", "message": path})
        try:
            input_value = json.loads(body)["input"]
            answer = evaluate(segments, input_value)
        except Exception as error:  # a bad body or a Rego error: OPA answers 400/500 with a message
            return self.answer(500, {"code": "internal_error", "message": str(error)})
        with open(output, "a") as out:
            out.write(json.dumps({"path": path, "input": input_value, "answer": answer}) + "\n")
        time.sleep(delay)
        self.answer(200, answer)

    def answer(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
if os.environ.get("OPA_TLS_CERT"):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.environ["OPA_TLS_CERT"], os.environ["OPA_TLS_KEY"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
