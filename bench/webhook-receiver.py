#!/usr/bin/env python3
"""bench/webhook-receiver.py: the webhook end of scripts/bench-daemon.sh's alert latency.

    webhook-receiver.py PORT OUT

Listens on 127.0.0.1:PORT; for each POST (an alert in Falco's JSON shape) appends to OUT the
receive time minus the event's kernel time (output_fields["evt.rawtime"], ns since the epoch),
in nanoseconds, one per line, and answers 200.

The receive time is taken when the read that brings a request's first bytes returns: when the
alert reached the webhook, before this server parses it (parsing is the receiver's time, not the
sender's). One thread, non-blocking sockets, HTTP/1.1 keep-alive as falcosidekick's and most
receivers' servers do; only what Vigil's webhook sends is understood (Content-Length bodies)."""
import json
import selectors
import socket
import sys
import time

port, out = int(sys.argv[1]), sys.argv[2]
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Connection:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.first_read_ns = None  # when the request being read began to arrive

    def readable(self):
        """Reads what came; answers every whole request in it. False once the peer closed."""
        data = self.sock.recv(1 << 16)
        if not data:
            return False
        if not self.buffer:
            self.first_read_ns = time.time_ns()
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return True
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return True
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            self.record(body, self.first_read_ns)
            self.first_read_ns = time.time_ns() if self.buffer else None
            self.sock.sendall(ANSWER)

    @staticmethod
    def record(body, received):
        try:
            raw = int(json.loads(body)["output_fields"]["evt.rawtime"])
        except (ValueError, KeyError, TypeError):
            return
        with open(out, "a") as f:
            f.write(f"{received - raw}\n")


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(64)
listener.setblocking(False)
selector = selectors.DefaultSelector()
selector.register(listener, selectors.EVENT_READ)
while True:
    for key, _ in selector.select():
        if key.fileobj is listener:
            sock, _ = listener.accept()
            sock.setblocking(True)  # answers are tiny: sendall does not wait
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            selector.register(sock, selectors.EVENT_READ, Connection(sock))
            continue
        connection = key.data
        try:
            alive = connection.readable()
        except (ConnectionError, ValueError):
            alive = False
        if not alive:
            selector.unregister(connection.sock)
            connection.sock.close()
