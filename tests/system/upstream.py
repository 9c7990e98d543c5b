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
  GET  /release          -> lets a waiting /sse (or a held AI stream) finish
  POST /v1/messages      -> Anthropic Messages 
  POST /v1/chat/completions, /v1/responses -> OpenAI chat / responses
  POST /v1beta/models/<m>:generateContent, :streamGenerateContent
                         -> Gemini (SSE with alt=sse, else a JSON array)

The AI endpoints answer like the providers do, from the request body: a
stream when it asks for one (Gemini: the URL), tool calls when it declares
tools and its last turn is not a tool result, else text. Request headers
steer them: x-test-id names the call (ids are built from it, so a test finds
its rows), x-test-hold holds the last event until /release, x-test-status
answers that status with the provider's error body, x-test-cached adds
cached prompt tokens.
"""
import http.server
import json
import os
import socketserver
import ssl
import subprocess
import threading
import time
from collections import namedtuple


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
            self.server.holding.clear()
            self.server.release.set()
            self.send(200, b"released\n")
        else:
            self.send(404, b"not found\n")

    def sse(self, n, gap):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the body ends when the connection does
        self.close_connection = True
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
        elif ai_handles(self.path):
            self.ai(body)
        else:
            self.send(404, b"not found\n")

    def ai(self, body):
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            self.send(400, b'{"error": "bad json"}', "application/json")
            return
        h = {k.lower(): v for k, v in self.headers.items()}
        reply = ai_reply(self.path, req, h)
        if reply.status != 200:
            self.send(reply.status, reply.body, "application/json")
        elif reply.events is None:
            self.send(200, reply.body, reply.content_type)
        else:
            self.stream(reply.events, reply.content_type, hold="x-test-hold" in h)

    def stream(self, events, ctype="text/event-stream", hold=False):
        """Chunked, flushed per event; with hold the last event waits for
        /release (the test proves the earlier ones already arrived)."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i, ev in enumerate(events):
            if hold and i == len(events) - 1:
                self.server.holding.set()
                self.server.release.wait(60)
                self.server.release.clear()
            data = ev.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


# ---------- AI providers ----------
#
# Shapes follow the providers' public API references; the numbers are
# arbitrary but distinct per protocol so a test can tell rows apart. The
# expected values live in TOKENS (the tests import it).

Reply = namedtuple("Reply", "status content_type body events")

TOKENS = {
    # raw usage numbers each protocol reports
    "anthropic": {"input": 1200, "cache_read": 300, "cache_write": 40, "output": 85},
    "openai-chat": {"prompt": 900, "cached": 100, "completion": 60, "reasoning": 12},
    "openai-responses": {"input": 2000, "cached": 500, "output": 300, "reasoning": 100},
    "gemini": {"prompt": 800, "cached": 200, "candidates": 50, "thoughts": 20},
}
TEXT = "Hello from the stand-in"
THINKING = "Considering the question"

GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")


def ai_handles(path):
    p = path.split("?", 1)[0]
    return p in ("/v1/messages", "/v1/chat/completions", "/v1/responses") or (
        p.startswith(GEMINI_PREFIXES) and (p.endswith(":generateContent")
                                           or p.endswith(":streamGenerateContent")))


def _sse(name, obj):
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(obj)}\n\n"


def _tool_names(req, protocol):
    tools = req.get("tools") or []
    if protocol == "gemini":
        return [d["name"] for t in tools for d in t.get("functionDeclarations", [])]
    if protocol == "openai-chat":
        return [t["function"]["name"] for t in tools if "function" in t]
    return [t["name"] for t in tools if "name" in t]


def _answered(req, protocol):
    """The last turn carries tool results: the model answers with text."""
    if protocol == "anthropic":
        last = (req.get("messages") or [{}])[-1]
        content = last.get("content")
        return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)
    if protocol == "openai-chat":
        return (req.get("messages") or [{}])[-1].get("role") == "tool"
    if protocol == "openai-responses":
        inp = req.get("input")
        return isinstance(inp, list) and bool(inp) and inp[-1].get("type") == "function_call_output"
    last = (req.get("contents") or [{}])[-1]
    return any("functionResponse" in part for part in last.get("parts", []))


def _calls(req, protocol, tid):
    """(call id, name, arguments JSON) for each declared tool, unless answered."""
    if _answered(req, protocol):
        return []
    return [(f"call_{tid}_{i}", name, json.dumps({"n": i, "tool": name}, separators=(",", ":")))
            for i, name in enumerate(_tool_names(req, protocol))]


def _anthropic(req, tid, h):
    t = TOKENS["anthropic"]
    model = req.get("model", "claude-sonnet-4-5")
    calls = _calls(req, "anthropic", tid)
    stop = "tool_use" if calls else "end_turn"
    if h.get("x-test-status"):
        return Reply(int(h["x-test-status"]), None, json.dumps(
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}).encode(),
            None)
    usage = {"input_tokens": t["input"], "cache_read_input_tokens": t["cache_read"],
             "cache_creation_input_tokens": t["cache_write"], "output_tokens": t["output"]}
    if not req.get("stream"):
        content = [{"type": "thinking", "thinking": THINKING, "signature": "sig"},
                   {"type": "text", "text": TEXT}]
        content += [{"type": "tool_use", "id": cid, "name": name, "input": json.loads(args)}
                    for cid, name, args in calls]
        doc = {"id": f"msg_{tid}", "type": "message", "role": "assistant", "model": model,
               "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}
        return Reply(200, "application/json", json.dumps(doc).encode(), None)
    start_usage = dict(usage, output_tokens=1)
    ev = [_sse("message_start", {"type": "message_start", "message": {
        "id": f"msg_{tid}", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "usage": start_usage}})]
    ev.append(_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "thinking", "thinking": ""}}))
    ev.append(_sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
        "type": "thinking_delta", "thinking": THINKING}}))
    ev.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    ev.append(_sse("content_block_start", {"type": "content_block_start", "index": 1,
                                           "content_block": {"type": "text", "text": ""}}))
    for piece in (TEXT[:6], TEXT[6:]):
        ev.append(_sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                               "delta": {"type": "text_delta", "text": piece}}))
    ev.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 1}))
    for i, (cid, name, args) in enumerate(calls, start=2):
        ev.append(_sse("content_block_start", {"type": "content_block_start", "index": i,
                                               "content_block": {"type": "tool_use", "id": cid,
                                                                 "name": name, "input": {}}}))
        for piece in (args[:5], args[5:]):
            ev.append(_sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "input_json_delta",
                                                             "partial_json": piece}}))
        ev.append(_sse("content_block_stop", {"type": "content_block_stop", "index": i}))
    ev.append(_sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop},
                                     "usage": {"output_tokens": t["output"]}}))
    ev.append(_sse("message_stop", {"type": "message_stop"}))
    return Reply(200, "text/event-stream", None, ev)


def _openai_chat(req, tid, h):
    t = TOKENS["openai-chat"]
    model = req.get("model", "gpt-4o")
    calls = _calls(req, "openai-chat", tid)
    finish = "tool_calls" if calls else "stop"
    usage = {"prompt_tokens": t["prompt"], "completion_tokens": t["completion"],
             "total_tokens": t["prompt"] + t["completion"],
             "prompt_tokens_details": {"cached_tokens": t["cached"]},
             "completion_tokens_details": {"reasoning_tokens": t["reasoning"]}}
    cid = f"chatcmpl-{tid}"
    if not req.get("stream"):
        msg = {"role": "assistant", "content": None if calls else TEXT}
        if calls:
            msg["tool_calls"] = [{"id": c, "type": "function",
                                  "function": {"name": n, "arguments": a}} for c, n, a in calls]
        doc = {"id": cid, "object": "chat.completion", "model": model,
               "choices": [{"index": 0, "message": msg, "finish_reason": finish}], "usage": usage}
        return Reply(200, "application/json", json.dumps(doc).encode(), None)

    def chunk(delta, finish_reason=None, **extra):
        return _sse(None, dict({"id": cid, "object": "chat.completion.chunk", "model": model,
                                "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish_reason}]}, **extra))
    ev = [chunk({"role": "assistant", "content": ""})]
    if not calls:
        ev += [chunk({"content": TEXT[:6]}), chunk({"content": TEXT[6:]})]
    for i, (c, n, a) in enumerate(calls):
        ev.append(chunk({"tool_calls": [{"index": i, "id": c, "type": "function",
                                         "function": {"name": n, "arguments": ""}}]}))
        for piece in (a[:4], a[4:]):
            ev.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    ev.append(chunk({}, finish))
    ev.append(_sse(None, {"id": cid, "object": "chat.completion.chunk", "model": model,
                          "choices": [], "usage": usage}))
    ev.append("data: [DONE]\n\n")
    return Reply(200, "text/event-stream", None, ev)


def _openai_responses(req, tid, h):
    t = TOKENS["openai-responses"]
    model = req.get("model", "gpt-5")
    calls = _calls(req, "openai-responses", tid)
    rid = f"resp_{tid}"
    usage = {"input_tokens": t["input"], "input_tokens_details": {"cached_tokens": t["cached"]},
             "output_tokens": t["output"],
             "output_tokens_details": {"reasoning_tokens": t["reasoning"]},
             "total_tokens": t["input"] + t["output"]}
    output = [{"id": "rs_1", "type": "reasoning",
               "summary": [{"type": "summary_text", "text": THINKING}]},
              {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": TEXT, "annotations": []}]}]
    output += [{"id": f"fc_{i}", "type": "function_call", "status": "completed", "call_id": c,
                "name": n, "arguments": a} for i, (c, n, a) in enumerate(calls)]
    final = {"id": rid, "object": "response", "status": "completed", "model": model,
             "output": output, "usage": usage}
    if not req.get("stream"):
        return Reply(200, "application/json", json.dumps(final).encode(), None)
    seq = iter(range(1000))

    def ev(name, **obj):
        return _sse(name, dict({"type": name, "sequence_number": next(seq)}, **obj))
    start = {"id": rid, "object": "response", "status": "in_progress", "model": model,
             "output": [], "usage": None}
    out = [ev("response.created", response=start),
           ev("response.output_item.added", output_index=0,
              item={"id": "rs_1", "type": "reasoning", "summary": []}),
           ev("response.reasoning_summary_text.delta", item_id="rs_1", output_index=0,
              summary_index=0, delta=THINKING),
           ev("response.output_item.added", output_index=1,
              item={"id": "msg_1", "type": "message", "role": "assistant", "content": []}),
           ev("response.output_text.delta", item_id="msg_1", output_index=1, content_index=0,
              delta=TEXT[:6]),
           ev("response.output_text.delta", item_id="msg_1", output_index=1, content_index=0,
              delta=TEXT[6:])]
    for i, (c, n, a) in enumerate(calls):
        item = {"id": f"fc_{i}", "type": "function_call", "status": "in_progress",
                "call_id": c, "name": n, "arguments": ""}
        out.append(ev("response.output_item.added", output_index=2 + i, item=item))
        for piece in (a[:3], a[3:]):
            out.append(ev("response.function_call_arguments.delta", item_id=f"fc_{i}",
                          output_index=2 + i, delta=piece))
        out.append(ev("response.output_item.done", output_index=2 + i,
                      item=dict(item, status="completed", arguments=a)))
    out.append(ev("response.completed", response=final))
    return Reply(200, "text/event-stream", None, out)


def _gemini(path, req, tid, h):
    t = TOKENS["gemini"]
    p, _, query = path.partition("?")
    model, _, method = p.rsplit("/", 1)[1].partition(":")
    calls = _calls(req, "gemini", tid)
    usage = {"promptTokenCount": t["prompt"], "candidatesTokenCount": t["candidates"],
             "thoughtsTokenCount": t["thoughts"],
             "totalTokenCount": t["prompt"] + t["candidates"] + t["thoughts"]}
    if "x-test-cached" in h:
        usage["cachedContentTokenCount"] = t["cached"]

    def chunk(parts, last=False):
        cand = {"content": {"role": "model", "parts": parts}, "index": 0}
        if last:
            cand["finishReason"] = "STOP"
        return {"candidates": [cand], "usageMetadata": usage if last else
                {"promptTokenCount": t["prompt"]}, "modelVersion": model,
                "responseId": f"gem_{tid}"}
    fcalls = [{"functionCall": {"name": n, "args": json.loads(a)}} for _, n, a in calls]
    chunks = [chunk([{"text": THINKING, "thought": True}]), chunk([{"text": TEXT[:6]}]),
              chunk([{"text": TEXT[6:]}] + fcalls, last=True)]
    if method == "generateContent":
        whole = chunk([{"text": THINKING, "thought": True}, {"text": TEXT}] + fcalls, last=True)
        return Reply(200, "application/json", json.dumps(whole).encode(), None)
    if "alt=sse" in query.split("&"):
        return Reply(200, "text/event-stream", None,
                     [f"data: {json.dumps(c)}\r\n\r\n" for c in chunks])
    parts = ["[" + json.dumps(chunks[0])] + [",\r\n" + json.dumps(c) for c in chunks[1:]]
    parts[-1] += "]"
    return Reply(200, "application/json", None, parts)


def ai_reply(path, req, h):
    tid = h.get("x-test-id", "x")
    p = path.split("?", 1)[0]
    if p == "/v1/messages":
        return _anthropic(req, tid, h)
    if p == "/v1/chat/completions":
        return _openai_chat(req, tid, h)
    if p == "/v1/responses":
        return _openai_responses(req, tid, h)
    return _gemini(path, req, tid, h)



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
        self.httpd.holding = threading.Event()  # a held stream waits for /release
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
