"""A local HTTPS server standing in for the world in network tests.

It has its own throwaway CA (made with the openssl CLI), serves a few
endpoints that exercise the proxy, and logs every request it receives so a
test can prove that a blocked request never arrived.

Endpoints:
  GET  /hello            -> "hello from <name>"
  POST /echo             -> JSON {method, path, headers, body}
  GET  /big?mib=N        -> N MiB of pseudo-random bytes (Content-Length)
  GET  /chunked?n=N      -> N chunks, chunked framing
  GET  /sse?n=N&gap=S    -> N SSE events, S seconds apart; the last one waits
                            until /release is hit (proves streaming)
  GET  /release          -> lets a waiting /sse finish
  POST /v1/messages      -> an Anthropic-shaped SSE stream with usage
  POST /v1/chat/completions -> an OpenAI-shaped SSE stream with usage
"""
import http.server
import json
import os
import socketserver
import ssl
import subprocess
import threading
import time


def make_ca(directory, names):
    """Throwaway CA and a server certificate for `names`; returns paths."""
    ca_key = os.path.join(directory, "ca.key")
    ca_crt = os.path.join(directory, "ca.crt")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    crt = os.path.join(directory, "server.crt")
    ext = os.path.join(directory, "server.ext")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=capsem test upstream CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
        "-out", csr, "-subj", "/CN=" + names[0])
    with open(ext, "w") as f:
        f.write("subjectAltName=" + ",".join("DNS:" + n for n in names) + ",IP:127.0.0.1\n")
        f.write("extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
        "-out", crt, "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def record(self, body=b""):
        self.server.log.append({"method": self.command, "path": self.path,
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": body})

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def send(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.record()
        path, _, query = self.path.partition("?")
        q = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        if path == "/hello":
            self.send(200, f"hello from {self.server.name}\n".encode())
        elif path == "/big":
            n = int(q.get("mib", "1")) << 20
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = bytes(range(256)) * 4096
            sent = 0
            while sent < n:
                chunk = block[:min(len(block), n - sent)]
                self.wfile.write(chunk)
                sent += len(chunk)
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(q.get("n", "3"))):
                data = f"chunk {i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/sse":
            self.sse(int(q.get("n", "3")), float(q.get("gap", "0.1")))
        elif path == "/release":
            self.server.release.set()
            self.send(200, b"released\n")
        else:
            self.send(404, b"not found\n")

    def sse(self, n, gap):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for i in range(n):
            if i == n - 1:
                self.server.release.wait(60)
            self.wfile.write(f"data: event {i}\n\n".encode())
            self.wfile.flush()
            time.sleep(gap)
        self.server.release.clear()

    def do_POST(self):
        body = self.read_body()
        self.record(body)
        if self.path == "/echo":
            out = json.dumps({"method": "POST", "path": self.path,
                              "headers": {k.lower(): v for k, v in self.headers.items()},
                              "body": body.decode(errors="replace")}).encode()
            self.send(200, out, "application/json")
        elif self.path.startswith("/v1/messages"):
            self.stream(anthropic_events())
        elif self.path.startswith("/v1/chat/completions"):
            self.stream(openai_events())
        else:
            self.send(404, b"not found\n")

    def stream(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for ev in events:
            data = ev.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


def anthropic_events():
    def ev(name, obj):
        return f"event: {name}\ndata: {json.dumps(obj)}\n\n"
    return [
        ev("message_start", {"type": "message_start", "message": {
            "id": "msg_test", "model": "claude-sonnet-4-20250514",
            "usage": {"input_tokens": 25, "cache_read_input_tokens": 10,
                      "cache_creation_input_tokens": 5, "output_tokens": 1}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}}),
        ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": "Hello"}}),
        ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                             "usage": {"output_tokens": 12}}),
        ev("message_stop", {"type": "message_stop"}),
    ]


def openai_events():
    def data(obj):
        return f"data: {json.dumps(obj)}\n\n"
    return [
        data({"id": "chatcmpl-test", "model": "gpt-4o-2024-08-06",
              "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]}),
        data({"id": "chatcmpl-test", "model": "gpt-4o-2024-08-06",
              "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        data({"id": "chatcmpl-test", "model": "gpt-4o-2024-08-06", "choices": [],
              "usage": {"prompt_tokens": 40, "completion_tokens": 7,
                        "prompt_tokens_details": {"cached_tokens": 8}}}),
        "data: [DONE]\n\n",
    ]


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Upstream:
    """Starts the TLS server on 127.0.0.1 (any free port) in a thread."""

    def __init__(self, directory, names=("test.example",), plain=False):
        os.makedirs(directory, exist_ok=True)
        self.ca, crt, key = make_ca(directory, list(names))
        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.name = names[0]
        self.httpd.log = []
        self.httpd.release = threading.Event()
        if not plain:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(crt, key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def log(self):
        return self.httpd.log

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
