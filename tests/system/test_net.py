"""The air gap (network.md) from inside a real guest: DNS under policy, the
MITM proxy with real TLS, 403s that name the rule, live policy reload, and
bad input that ends one connection while another download carries on.

A local HTTPS server (upstream.py, its own throwaway CA) stands in for the
world; the user policy points test names at it with upstream overrides."""
import os
import textwrap
import threading

import pytest

from conftest import wait_for
from guestdb import sh, wait_rows, write_credentials
from upstream import Upstream

NAMES = ("allowed.test", "other.test", "api.anthropic.com")
SECRET = "sk-ant-test-0123456789abcdefghijklmnop"


PLAIN = {}  # the plain-HTTP stand-in's port, set by the world fixture


def policy_text(port, ca, extra_rules=""):
    lines = [f'  {{ target = "{n}:443", dial = "127.0.0.1:{port}", ca_file = "{ca}" }}'
             for n in NAMES]
    if PLAIN.get("port"):
        lines.append(f'  {{ target = "allowed.test:80", dial = "127.0.0.1:{PLAIN["port"]}" }}')
    overrides = ",\n".join(lines)
    return textwrap.dedent("""\
        schema = 1
        rule = [
        {extra}  {{ id = "no-secret", action = "block", host = "allowed.test", path_prefix = "/secret", reason = "secrets stay home" }},
          {{ id = "test-allowed", action = "allow", host = ["allowed.test", "other.test"] }},
        ]
        [network]
        upstream_override = [
        {overrides}
        ]
        """).format(extra=extra_rules, overrides=overrides)


@pytest.fixture(scope="module")
def world(capsem, tmp_path_factory):
    up = Upstream(str(tmp_path_factory.mktemp("upstream")), names=NAMES)
    up.plain = Upstream(str(tmp_path_factory.mktemp("plain")), names=NAMES, plain=True)
    PLAIN["port"] = up.plain.port
    path = os.path.join(capsem.home, "policy.toml")
    with open(path, "w") as f:
        f.write(policy_text(up.port, up.ca))
    up.policy_path = path
    creds = write_credentials(capsem.home, anthropic=SECRET)
    yield up
    os.unlink(path)
    os.unlink(creds)
    up.plain.close()
    up.close()


@pytest.fixture(scope="module")
def gvm(capsem, world):
    info = capsem.create(profile_id="code", ram_mb=1024, cpus=2)
    yield info["id"]
    capsem.delete(info["id"])








@pytest.mark.fast
def test_curl_python_node_reach_an_allowed_name_with_verification(capsem, gvm, world):
    r = sh(capsem, gvm, "curl -sS https://allowed.test/hello")
    assert r["exit_code"] == 0, r
    assert r["stdout"].strip() == "hello from allowed.test"
    py = sh(capsem, gvm, "python3 -c \"import urllib.request as u; "
                         "print(u.urlopen('https://allowed.test/hello').read().decode())\"")
    assert py["exit_code"] == 0, py
    assert py["stdout"].strip() == "hello from allowed.test"
    node = sh(capsem, gvm, "node -e \"require('https').get('https://allowed.test/hello', r => "
                           "{let d=''; r.on('data', c => d += c); r.on('end', () => console.log(d))})"
                           ".on('error', e => {console.error(e.message); process.exit(1)})\"")
    assert node["exit_code"] == 0, node
    assert node["stdout"].strip() == "hello from allowed.test"
    got = [e for e in world.log if e["path"] == "/hello"]
    assert len(got) >= 3
    net = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE path = '/hello' "
                                 "AND decision = 'allowed'")
    assert net[0]["domain"] == "allowed.test" and net[0]["status_code"] == 200
    assert net[0]["matched_rule"] == "user:test-allowed"
    assert '"content-length"' in net[0]["response_headers"], net[0]["response_headers"]
    # Attribution is best effort within a time budget (slow under TCG): at
    # least some of the three programs must be named, and nothing else.
    names = {r["process_name"] for r in net}
    assert names & {"curl", "python3", "node"} and names <= {"curl", "python3", "node", "?"}, names


def test_the_guest_trusts_only_through_the_capsem_ca(capsem, gvm, world):
    # Verification is on: a bundle without the capsem CA fails the handshake.
    r = sh(capsem, gvm, "curl -sS --cacert /usr/share/ca-certificates/mozilla/ISRG_Root_X1.crt "
                        "https://allowed.test/hello")
    assert r["exit_code"] == 60, r  # peer certificate cannot be authenticated


@pytest.mark.fast
def test_blocked_request_gets_403_naming_the_rule_and_never_arrives(capsem, gvm, world):
    before = len(world.log)
    r = sh(capsem, gvm, "curl -sS -D /tmp/h -o /tmp/b -w '%{http_code}' "
                        "https://allowed.test/secret/x; echo; cat /tmp/b; cat /tmp/h")
    out = r["stdout"]
    assert out.startswith("403"), out
    assert "capsem: request blocked" in out
    assert "rule: user:no-secret" in out
    assert "secrets stay home" in out
    assert "X-Capsem-Reason: policy_block" in out
    assert not [e for e in world.log[before:] if e["path"].startswith("/secret")]
    denied = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE decision = 'denied' "
                                    "AND path = '/secret/x'")
    assert denied[0]["matched_rule"] == "user:no-secret"
    assert denied[0]["reason"] == "policy_block"
    wait_rows(capsem, gvm, "SELECT * FROM policy_decisions WHERE rule_id = 'no-secret'")


@pytest.mark.fast
def test_denied_name_gets_nxdomain(capsem, gvm):
    r = sh(capsem, gvm, "python3 -c \"import socket; socket.gethostbyname('denied.test')\" "
                        "2>&1; curl -sS https://denied.test/ 2>&1; echo rc=$?")
    assert "Name or service not known" in r["stdout"] or "not known" in r["stdout"], r
    assert "rc=6" in r["stdout"]  # curl: could not resolve host
    ev = wait_rows(capsem, gvm, "SELECT * FROM dns_events WHERE qname = 'denied.test'")
    assert ev[0]["decision"] == "denied" and ev[0]["rcode"] == "NXDOMAIN"
    assert ev[0]["matched_rule"] == "default:default-deny"
    ok = wait_rows(capsem, gvm, "SELECT * FROM dns_events WHERE qname = 'allowed.test' "
                                "AND qtype = 'A'")
    assert ok[0]["decision"] == "allowed" and ok[0]["answer_ip"].startswith("192.0.2.")


def test_sni_host_mismatch_is_refused(capsem, gvm, world):
    r = sh(capsem, gvm, "curl -sS -o /dev/null -w '%{http_code}' -H 'Host: other.test' "
                        "https://allowed.test/hello")
    assert r["stdout"] == "421", r


def test_direct_ip_other_port_and_udp_fail(capsem, gvm):
    ip = sh(capsem, gvm, "curl -sk -o /dev/null -w '%{http_code}' --max-time 20 https://1.1.1.1/")
    assert ip["stdout"] == "403", ip  # an IP literal: nothing allows it
    port = sh(capsem, gvm, "curl -sS --max-time 10 http://allowed.test:8443/ 2>&1; echo rc=$?")
    assert "rc=7" in port["stdout"], port  # connection refused (tcp-reset)
    udp = sh(capsem, gvm, "python3 -c \"import socket; s = socket.socket(socket.AF_INET, "
                          "socket.SOCK_DGRAM); s.settimeout(3); s.connect(('1.1.1.1', 9999)); "
                          "s.send(b'x'); s.recv(10); print('reply')\" 2>&1; echo rc=$?")
    assert "reply" not in udp["stdout"] and "rc=1" in udp["stdout"], udp
    v6 = sh(capsem, gvm, "python3 -c \"import socket; socket.socket(socket.AF_INET6)\" 2>&1")
    assert "Address family not supported" in v6["stdout"], v6


def test_sse_events_stream_before_the_last_is_sent(capsem, gvm, world):
    world.httpd.release.clear()
    job = {}

    def run():
        job["r"] = sh(capsem, gvm, "curl -sSN 'https://allowed.test/sse?n=3&gap=0' "
                                   "> /tmp/sse.out; echo done >> /tmp/sse.out")
    t = threading.Thread(target=run)
    t.start()
    try:
        first = wait_for(lambda: "data:" in sh(capsem, gvm, "cat /tmp/sse.out 2>/dev/null")["stdout"],
                         60, "the first SSE event in the guest")
        assert first
        assert "done" not in sh(capsem, gvm, "cat /tmp/sse.out")["stdout"]
    finally:
        world.httpd.release.set()
        t.join(60)
    out = sh(capsem, gvm, "cat /tmp/sse.out")["stdout"]
    assert out.count("data:") == 3 and out.endswith("done\n"), out


def test_policy_edit_applies_to_the_next_request(capsem, gvm, world):
    r = sh(capsem, gvm, "curl -s -o /dev/null -w '%{http_code}' https://other.test/hello")
    assert r["stdout"] == "200"
    with open(world.policy_path, "w") as f:
        f.write(policy_text(world.port, world.ca, extra_rules='  { id = "late-block", '
                            'action = "block", host = "other.test", path_prefix = "/hello" },\n'))
    try:
        wait_for(lambda: sh(capsem, gvm, "curl -s -o /dev/null -w '%{http_code}' "
                                         "https://other.test/hello")["stdout"] == "403",
                 20, "the edited policy to apply")
        r = sh(capsem, gvm, "curl -s https://other.test/hello")
        assert "rule: user:late-block" in r["stdout"]
    finally:
        with open(world.policy_path, "w") as f:
            f.write(policy_text(world.port, world.ca))
    wait_for(lambda: sh(capsem, gvm, "curl -s -o /dev/null -w '%{http_code}' "
                                     "https://other.test/hello")["stdout"] == "200",
             20, "the restored policy to apply")


BAD_INPUTS = {
    # name: (guest python snippet writing to an open socket `s` / TLS socket `t`, reason)
    "malformed_client_hello": (
        "s.sendall(bytes.fromhex('16030100050100000100')); s.settimeout(10); "
        "print(s.recv(100))", "bad_client_hello"),
    "oversized_headers": (
        "t.sendall(b'GET /hello HTTP/1.1\\r\\nHost: allowed.test\\r\\nX-Big: ' + b'a' * 70000 + "
        "b'\\r\\n\\r\\n'); t.settimeout(10); print(t.recv(200))", "headers_too_large"),
    "bad_chunked": (
        "t.sendall(b'POST /echo HTTP/1.1\\r\\nHost: allowed.test\\r\\nTransfer-Encoding: chunked"
        "\\r\\n\\r\\nzz\\r\\n'); t.settimeout(10); print(t.recv(200))", "bad_chunked"),
}


def guest_socket_script(body, tls):
    return textwrap.dedent(f"""\
        import socket, ssl
        s = socket.create_connection(('allowed.test', 443), timeout=40)
        t = None
        if {tls!r}:
            t = ssl.create_default_context().wrap_socket(s, server_hostname='allowed.test')
        try:
            {body}
        except Exception as e:
            print('error', type(e).__name__)
        """)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS) + ["slowloris"])
def test_bad_input_ends_one_connection_while_a_download_continues(capsem, gvm, world, name):
    dl = {}

    def download():
        dl["r"] = sh(capsem, gvm, "curl -sS --limit-rate 2M 'https://allowed.test/big?mib=8' "
                                  "| wc -c", timeout_secs=120)
    t = threading.Thread(target=download)
    t.start()
    if name == "slowloris":
        body = ("t.sendall(b'GET /hello HTTP/1.1\\r\\nHost: allowed.test\\r\\n'); "
                "t.settimeout(45); print(t.recv(200))")
        reason = "header_timeout"
    else:
        body, reason = BAD_INPUTS[name]
    tls = name != "malformed_client_hello"
    sh(capsem, gvm, "cat > /tmp/bad.py <<'EOF'\n" + guest_socket_script(body, tls) + "EOF")
    r = sh(capsem, gvm, "python3 /tmp/bad.py", timeout_secs=90)
    t.join(150)
    assert dl["r"]["stdout"].strip() == str(8 << 20), dl["r"]
    ev = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE reason = ?", (reason,),
                   what=f"a {reason} row")
    assert ev[-1]["decision"] in ("error", "denied"), ev[-1]
    if name != "malformed_client_hello":
        assert r["stdout"].startswith("b'HTTP/1.1 4"), r


@pytest.mark.fast
def test_placeholder_becomes_the_key_only_toward_its_provider(capsem, gvm, world):
    ph = sh(capsem, gvm, "echo $ANTHROPIC_API_KEY")["stdout"].strip()
    assert ph.startswith("capsem-placeholder-anthropic-") and len(ph) == 55, ph
    assert SECRET not in sh(capsem, gvm, "env; cat /proc/1/environ 2>/dev/null")["stdout"]
    r = sh(capsem, gvm, "curl -sS -X POST -H \"x-api-key: $ANTHROPIC_API_KEY\" "
                        "-d hi https://api.anthropic.com/echo")
    assert r["exit_code"] == 0, r
    import json
    echoed = json.loads(r["stdout"])
    assert echoed["headers"]["x-api-key"] == SECRET
    before = len(world.log)
    bad = sh(capsem, gvm, "curl -s -w '\\n%{http_code}' -H \"Authorization: Bearer "
                          "$ANTHROPIC_API_KEY\" https://allowed.test/hello")
    assert bad["stdout"].endswith("\n403"), bad
    assert "placeholder_misuse" in bad["stdout"] or "placeholder" in bad["stdout"]
    assert not world.log[before:], "the misused placeholder must not leave the host"
    sub = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE credential_provider = "
                                 "'anthropic' AND path = '/echo'")
    assert SECRET not in (sub[0]["request_headers"] or "")
    assert "placeholder:anthropic" in sub[0]["request_headers"], sub[0]["request_headers"]
    mis = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE reason = 'placeholder_misuse'")
    assert mis[0]["decision"] == "denied" and mis[0]["domain"] == "allowed.test"
    # In a request body too: the upload stops before the chunk leaves.
    before = len(world.log)
    body = sh(capsem, gvm, "curl -s -w '\\n%{http_code}' -X POST --data-binary "
                           "\"token=$ANTHROPIC_API_KEY\" https://allowed.test/echo")
    assert body["stdout"].endswith("\n403"), body
    assert not [e for e in world.log[before:] if e["path"] == "/echo"]


def test_model_scope_rule_decides_on_the_parsed_ai_request(capsem, gvm, world):
    rule = ('  { id = "no-opus", scope = "model", action = "block", '
            'expr = \'model.name.startsWith("claude-opus")\', reason = "opus is not for tests" },\n')
    with open(world.policy_path, "w") as f:
        f.write(policy_text(world.port, world.ca, extra_rules=rule))

    def post(model):
        body = '{"model": "%s", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}' % model
        return sh(capsem, gvm, "curl -s -w '\\n%{http_code}' -H 'content-type: application/json' "
                               "-H 'anthropic-version: 2023-06-01' "
                               f"-d '{body}' https://api.anthropic.com/v1/messages")["stdout"]
    try:
        wait_for(lambda: post("claude-opus-4-1").endswith("\n403"), 20, "the model rule to apply")
        before = len(world.log)
        out = post("claude-opus-4-1")
        assert "rule: user:no-opus" in out and "opus is not for tests" in out, out
        assert not world.log[before:], "a blocked model call must not reach the provider"
        ok = post("claude-sonnet-4-5")
        assert ok.endswith("\n200"), ok
    finally:
        with open(world.policy_path, "w") as f:
            f.write(policy_text(world.port, world.ca))


def test_plain_http_on_a_listed_port_is_inspected_the_same_way(capsem, gvm, world):
    r = sh(capsem, gvm, "curl -sS http://allowed.test/hello")
    assert r["stdout"].strip() == "hello from allowed.test", r
    blocked = sh(capsem, gvm, "curl -s -w '\\n%{http_code}' http://allowed.test/secret/y")
    assert blocked["stdout"].endswith("\n403") and "rule: user:no-secret" in blocked["stdout"]
    assert not [e for e in world.plain.log if e["path"].startswith("/secret")]
    row = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE scheme = 'http' AND path = '/hello'")
    assert row[0]["decision"] == "allowed" and row[0]["port"] == 80


def test_metadata_and_private_addresses_are_blocked(capsem, gvm):
    r = sh(capsem, gvm, "curl -s -w '\\n%{http_code}' --max-time 20 "
                        "http://169.254.169.254/latest/meta-data/")
    assert r["stdout"].endswith("\n403"), r
    row = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE domain = '169.254.169.254'")
    assert row[0]["decision"] == "denied"
    assert row[0]["reason"] in ("private_address", "default_deny"), row[0]


def test_git_trusts_the_capsem_ca(capsem, gvm, world):
    # The stand-in is no git server: a 404 after a verified handshake proves
    # git accepted the capsem CA (a trust failure says "SSL certificate problem").
    r = sh(capsem, gvm, "git ls-remote https://allowed.test/repo.git 2>&1; echo rc=$?")
    assert "SSL certificate problem" not in r["stdout"], r
    assert [e for e in world.log if e["path"].startswith("/repo.git/info/refs")], r


def test_host_alias_reaches_the_host_loopback_only_when_a_rule_names_it(capsem, gvm, world):
    import http.server
    import socketserver

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"hello from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    try:
        srv = socketserver.TCPServer(("127.0.0.1", 11434), Hello)
    except OSError:
        pytest.skip("port 11434 is taken on this host")
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    url = "http://host.capsem.internal:11434/"
    try:
        denied = sh(capsem, gvm, f"curl -s -w '\\n%{{http_code}}' --max-time 20 {url}; echo rc=$?")
        assert "hello from the host" not in denied["stdout"], denied
        rule = '  { id = "host-svc", action = "allow", host = "host.capsem.internal", ports = [11434] },\n'
        with open(world.policy_path, "w") as f:
            f.write(policy_text(world.port, world.ca, extra_rules=rule))
        wait_for(lambda: "hello from the host" in sh(capsem, gvm, f"curl -s --max-time 20 {url}")["stdout"],
                 20, "the host alias to be allowed")
        ev = wait_rows(capsem, gvm, "SELECT * FROM dns_events WHERE qname = 'host.capsem.internal' "
                                    "AND decision = 'allowed'")
        assert ev[-1]["answer_ip"] == "10.0.0.2"
    finally:
        with open(world.policy_path, "w") as f:
            f.write(policy_text(world.port, world.ca))
        srv.shutdown()
        srv.server_close()
