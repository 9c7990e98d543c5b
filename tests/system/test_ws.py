"""WebSocket upgrades through the proxy (network.md section 6 step 13), from
inside a real guest: an allowed upgrade is spliced both ways (frames are not
parsed), one net_events row is written at close, a non-101 answer is
forwarded, and a policy rule on http.upgrade blocks before anything reaches
the server.

wsecho.py (a local TLS WebSocket echo server with its own throwaway CA)
stands in for the world; the user policy points ws.test at it."""
import base64
import json
import os
import sqlite3
import textwrap

import pytest

from conftest import wait_for
from wsecho import WsEcho

NAME = "ws.test"

# Runs in the guest: argv = host path message big_bytes wss|ws. Hand-written RFC 6455
# client (stdlib only): handshake, one masked text frame, one masked binary
# frame of big_bytes random bytes, then the close handshake. big_bytes -1:
# FIN after the text frame, then read the echo; -2: the text frame and FIN
# sent right behind the request head, before the 101.
CLIENT = r'''
import base64, hashlib, os, socket, ssl, struct, sys
host, path, msg, big, scheme = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
if scheme == "wss":
    ctx = ssl.create_default_context()
    s = ctx.wrap_socket(socket.create_connection((host, 443), timeout=60), server_hostname=host)
else:
    s = socket.create_connection((host, 80), timeout=60)
def mask(data, m):
    n = len(data)
    k = (m * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")

def framed(op, payload):
    n = len(payload)
    if n < 126:
        h = struct.pack("!BB", 0x80 | op, 0x80 | n)
    elif n < 65536:
        h = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
    else:
        h = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
    m = os.urandom(4)
    return h + m + mask(payload, m)

def send(op, payload):
    s.sendall(framed(op, payload))

def fin():  # TCP FIN under the TLS session (SSLSocket.shutdown would drop TLS)
    socket.socket(fileno=os.dup(s.fileno())).shutdown(socket.SHUT_WR)

key = base64.b64encode(os.urandom(16)).decode()
req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, key)).encode()
if big == -2:  # the frame and our FIN before the 101 arrives
    s.sendall(req + framed(1, msg.encode()))
    fin()
else:
    s.sendall(req)
rest = b""
while b"\r\n\r\n" not in rest:
    d = s.recv(4096)
    if not d:
        break
    rest += d
head, _, rest = rest.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
        for l in lines[1:] if ":" in l}
print("STATUS", lines[0])
if not lines[0].startswith("HTTP/1.1 101"):
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        d = s.recv(4096)
        if not d:
            break
        rest += d
    print("BODY", rest.decode(errors="replace").replace("\n", "|"))
    print("CONNECTION", hdrs.get("connection"))
    print("REASON", hdrs.get("x-capsem-reason"))
    print("EOF", s.recv(10) == b"")
    sys.exit(0)
want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
print("ACCEPT", "ok" if hdrs.get("sec-websocket-accept") == want else "bad")
if msg == "--idle":  # send nothing: the proxy's idle timeout must end it
    import time
    t = time.monotonic()
    print("IDLE", s.recv(10) == b"", int(time.monotonic() - t))
    sys.exit(0)

def exact(n):
    global rest
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            raise EOFError("eof after %d of %d bytes" % (len(rest), n))
        rest += d
    out, rest = rest[:n], rest[n:]
    return out

def frame():
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    return b0 & 0x0F, exact(n)

if big != -2:
    send(1, msg.encode())
if big == -1:  # half-close: the echo must still come back after our FIN
    fin()
op, data = frame()
print("ECHO", op, data.decode())
if big < 0:
    print("EOF", s.recv(10) == b"")
    sys.exit(0)
if big:
    blob = os.urandom(big)
    send(2, blob)
    op, data = frame()
    print("BIG", op, data == blob, len(data))
send(8, struct.pack("!H", 1000))
op, data = frame()
print("CLOSE", op, struct.unpack("!H", data[:2])[0])
print("EOF", s.recv(10) == b"")
'''


def policy_text(srv, extra_rules="", idle_s=600):
    port, plain, ca = srv.port, srv.plain_port, srv.ca
    return textwrap.dedent("""\
        schema = 1
        rule = [
        {extra}  {{ id = "ws-allowed", action = "allow", host = {hosts} }},
        ]
        [network]
        upstream_idle_s = {idle}
        upstream_override = [
          {{ target = "{name}:443", dial = "127.0.0.1:{port}", ca_file = "{ca}" }},
          {{ target = "{name}:80", dial = "127.0.0.1:{plain}" }},
          {{ target = "noca.{name}:443", dial = "127.0.0.1:{port}" }},
          {{ target = "wrongname.{name}:443", dial = "127.0.0.1:{port}", ca_file = "{ca}" }},
        ]
        """).format(extra=extra_rules, name=NAME, port=port, plain=plain, ca=ca, idle=idle_s,
                   hosts=json.dumps([NAME, "noca." + NAME, "wrongname." + NAME]))


@pytest.fixture(scope="module")
def echo(capsem, tmp_path_factory):
    srv = WsEcho(str(tmp_path_factory.mktemp("wsecho")), names=(NAME,))
    path = os.path.join(capsem.home, "policy.toml")
    with open(path, "w") as f:
        f.write(policy_text(srv))
    srv.policy_path = path
    yield srv
    os.unlink(path)
    srv.close()


@pytest.fixture(scope="module")
def gvm(capsem, echo):
    info = capsem.create(profile_id="code", ram_mb=1024, cpus=2)
    vm = info["id"]
    script = base64.b64encode(CLIENT.encode()).decode()
    r = capsem.exec(vm, f"echo {script} | base64 -d > /tmp/wsclient.py")
    assert r["exit_code"] == 0, r
    yield vm
    capsem.delete(vm)


def client(capsem, vm, path, msg, big=0, scheme="wss", host=NAME):
    r = capsem.exec(vm, f"python3 /tmp/wsclient.py {host} {path} {msg} {big} {scheme}",
                    timeout_secs=120)
    assert r["exit_code"] == 0, r
    return dict(line.split(" ", 1) for line in r["stdout"].splitlines() if " " in line)


def rows(capsem, vm, sql, args=()):
    db = os.path.join(capsem.home, "run", "sessions", vm, "session.db")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def wait_rows(capsem, vm, sql, args=(), what="rows"):
    return wait_for(lambda: rows(capsem, vm, sql, args), 10, what, interval=0.2)


@pytest.mark.fast
def test_allowed_upgrade_is_spliced_and_recorded_once(capsem, gvm, echo):
    before = echo.echoed
    out = client(capsem, gvm, "/chat", "hello-through-the-splice", big=600000)
    assert out["STATUS"].startswith("HTTP/1.1 101"), out
    assert out["ACCEPT"] == "ok", out
    assert out["ECHO"] == "1 hello-through-the-splice", out
    assert out["BIG"] == "2 True 600000", out  # larger than every queue: flow control
    assert out["CLOSE"] == "8 1000", out
    assert out["EOF"] == "True", out
    assert echo.echoed - before == 2
    seen = [e for e in echo.log if e["path"] == "/chat"]
    assert seen and seen[-1]["headers"]["upgrade"].lower() == "websocket"
    assert seen[-1]["headers"]["host"] == NAME
    ws = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE conn_type = 'websocket' "
                                 "AND path = '/chat'")
    assert len(ws) == 1, ws
    row = ws[0]
    assert row["status_code"] == 101 and row["decision"] == "allowed"
    assert row["domain"] == NAME and row["path"] == "/chat"
    assert row["matched_rule"] == "user:ws-allowed"
    # Every frame byte after the 101, heads excluded. Up (masked): text
    # 2+4+24, binary 2+8+4+600000, close 2+4+2; down (unmasked): 2+24,
    # 2+8+600000, 2+2.
    assert row["bytes_sent"] == 30 + 600014 + 8, row
    assert row["bytes_received"] == 26 + 600010 + 4, row
    assert row["duration_ms"] >= 0 and row["ttfb_ms"] >= 0
    assert "sec-websocket-accept" in (row["response_headers"] or "").lower(), row
    # no other row for this connection (the 101 is the row)
    same = rows(capsem, gvm, "SELECT * FROM net_events WHERE conn_id = ?", (row["conn_id"],))
    assert len(same) == 1, same


def test_plain_ws_half_close_reaches_the_server_and_the_echo_still_returns(capsem, gvm, echo):
    # Plain ws:// (port 80): the proxy's non-TLS upstream leg, and a server
    # that can half-close (see wsecho.py).
    out = client(capsem, gvm, "/half", "after-fin", big=-1, scheme="ws")
    assert out["STATUS"].startswith("HTTP/1.1 101"), out
    assert out["ECHO"] == "1 after-fin", out
    assert out["EOF"] == "True", out
    # The frame and the FIN right behind the head: both wait for the 101.
    out = client(capsem, gvm, "/early", "before-101", big=-2, scheme="ws")
    assert out["STATUS"].startswith("HTTP/1.1 101"), out
    assert out["ECHO"] == "1 before-101", out
    assert out["EOF"] == "True", out  # the server saw our end, closed, and so did the proxy
    for path, text in (("/half", "after-fin"), ("/early", "before-101")):
        row = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE path = ?", (path,))[0]
        assert row["conn_type"] == "websocket" and row["reason"] is None, row
        assert row["scheme"] == "http" and row["port"] == 80, row
        # one masked text frame up, its unmasked echo down (the server closes without a close frame)
        assert row["bytes_sent"] == 2 + 4 + len(text), row
        assert row["bytes_received"] == 2 + len(text), row


@pytest.mark.parametrize("host, why", [
    ("noca." + NAME, "unable to get local issuer certificate"),  # not in any trust store
    ("wrongname." + NAME, "hostname mismatch"),  # trusted CA, certificate for another name
])
def test_the_upstream_certificate_and_name_are_verified(capsem, gvm, echo, host, why):
    before = len(echo.log)
    out = client(capsem, gvm, "/tls", "x", host=host)
    assert out["STATUS"].startswith("HTTP/1.1 502"), out
    assert out["REASON"] == "upstream_tls", out
    assert why in out["BODY"], out
    assert len(echo.log) == before  # the handshake failed: no request reached it
    row = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE domain = ?", (host,))[0]
    assert row["status_code"] == 502 and row["reason"] == "upstream_tls", row


def test_a_refused_upgrade_is_forwarded_then_closed(capsem, gvm, echo):
    out = client(capsem, gvm, "/refuse", "x")
    assert out["STATUS"].startswith("HTTP/1.1 426"), out
    assert out["BODY"] == "no upgrade here|", out
    assert out["CONNECTION"] == "close", out
    assert out["EOF"] == "True", out
    row = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE path = '/refuse'")[0]
    assert row["status_code"] == 426 and row["decision"] == "allowed", row
    assert row["conn_type"] == "https"


@pytest.mark.fast
def test_policy_on_http_upgrade_blocks_before_the_server(capsem, gvm, echo):
    block = ('  { id = "no-ws", action = "block", host = "' + NAME + '", '
             "expr = 'http.upgrade == \"websocket\"', reason = \"no websockets\" },\n")
    with open(echo.policy_path, "w") as f:
        f.write(policy_text(echo, extra_rules=block))
    try:
        tries = iter(range(1000))

        def blocked():
            path = f"/blocked-{next(tries)}"
            o = client(capsem, gvm, path, "x")
            return (path, o) if o["STATUS"].startswith("HTTP/1.1 403") else None
        path, out = wait_for(blocked, 30, "the blocking policy to apply")
        assert "rule: user:no-ws" in out["BODY"], out
        assert out["REASON"] == "policy_block", out
        assert not [e for e in echo.log if e["path"] == path]
        denied = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE path = ? "
                                        "AND decision = 'denied'", (path,))
        assert denied[0]["matched_rule"] == "user:no-ws"
        assert denied[0]["status_code"] == 403
    finally:
        with open(echo.policy_path, "w") as f:
            f.write(policy_text(echo))


def test_an_idle_splice_is_closed_after_upstream_idle_s(capsem, echo):
    # The proxy's limits are fixed when the VM starts: a VM of its own.
    with open(echo.policy_path, "w") as f:
        f.write(policy_text(echo, idle_s=2))
    try:
        info = capsem.create(profile_id="code", ram_mb=1024, cpus=2)
    finally:
        with open(echo.policy_path, "w") as f:
            f.write(policy_text(echo))
    vm = info["id"]
    try:
        script = base64.b64encode(CLIENT.encode()).decode()
        assert capsem.exec(vm, f"echo {script} | base64 -d > /tmp/wsclient.py")["exit_code"] == 0
        out = client(capsem, vm, "/idle", "--idle")
        assert out["STATUS"].startswith("HTTP/1.1 101"), out
        closed, waited = out["IDLE"].split()
        assert closed == "True" and 1 <= int(waited) <= 10, out
        row = wait_rows(capsem, vm, "SELECT * FROM net_events WHERE path = '/idle'")[0]
        assert row["conn_type"] == "websocket" and row["status_code"] == 101, row
        assert row["reason"] == "idle_timeout", row
    finally:
        capsem.delete(vm)
