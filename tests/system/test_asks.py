"""Held requests (network.md 8.4, docs/asks.md): a policy rule with action
`ask` holds a guest request until someone answers through the service API
(GET /vms/{id}/asks, POST /vms/{id}/asks/{ask_id}), the CLI (capsem asks,
approve, deny) or capsem-mcp (capsem_ask_list, capsem_ask_resolve); an
unanswered ask is denied at policy.ask_timeout_s.

The first tests need only a VM (error paths of the API, CLI and MCP tool).
The others run curl in a `code` VM against a local HTTPS server (upstream.py)
that a user policy rule marks `ask`, and answer while curl waits."""
import json
import os
import re
import sqlite3
import subprocess
import textwrap
import threading
import time
import tomllib

import pytest

from conftest import BIN_DIR, wait_for
from upstream import Upstream

ASK_HOST = "ask.test"
LONG_WAIT_S = 30   # ask_timeout_s while a test answers
SHORT_WAIT_S = 3   # ask_timeout_s of the timeout test
UNKNOWN_ASK = "0123456789ab"


# ---------- helpers ----------

def policy_text(up, rule_id, timeout_s):
    return textwrap.dedent(f"""\
        schema = 1
        rule = [
          {{ id = "{rule_id}", action = "ask", host = "{ASK_HOST}", reason = "the user decides about {ASK_HOST}" }},
        ]
        [policy]
        ask_timeout_s = {timeout_s}
        [network]
        upstream_override = [
          {{ target = "{ASK_HOST}:443", dial = "127.0.0.1:{up.port}", ca_file = "{up.ca}" }},
        ]
        """)


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def vm_dir(capsem, vm):
    return os.path.join(capsem.home, "run", "sessions", vm)


def reloads(capsem, vm):
    try:
        with open(os.path.join(vm_dir(capsem, vm), "process.log"), errors="replace") as f:
            return f.read().count("policy reloaded")
    except FileNotFoundError:
        return 0


def set_policy(capsem, vm, up, rule_id, timeout_s=LONG_WAIT_S):
    """Rewrites the user policy and waits until the VM's process reloaded it."""
    before = reloads(capsem, vm)
    write_atomic(up.policy_path, policy_text(up, rule_id, timeout_s))
    wait_for(lambda: reloads(capsem, vm) > before, 15, "the policy reload")


def rows(capsem, vm, sql, args=()):
    capsem.api("GET", f"/vms/{vm}/history?limit=1")  # flushes the session.db writer
    db = os.path.join(vm_dir(capsem, vm), "session.db")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def decision_row(capsem, vm, ask_id, status):
    """The policy_decisions row of an ask once it has `status`."""
    sql = "SELECT * FROM policy_decisions WHERE event_id = ? AND status = ?"
    return wait_for(lambda: rows(capsem, vm, sql, (ask_id, status)), 10,
                    f"ask {ask_id} row with status {status}", interval=0.2)[0]


class Curl:
    """curl in the guest on a thread (exec blocks until curl ends)."""

    def __init__(self, capsem, vm, url, method="GET", tag="c"):
        self.started = time.monotonic()
        cmd = (f"curl -sS -X {method} -D /tmp/{tag}.h -o /tmp/{tag}.b -w '%{{http_code}}' "
               f"--max-time 120 '{url}'; echo; cat /tmp/{tag}.h /tmp/{tag}.b")
        self.response = None
        body = {"command": cmd, "timeout_secs": 150}
        self.thread = threading.Thread(target=lambda: setattr(
            self, "response", capsem.api("POST", f"/vms/{vm}/exec", body, timeout=200)))
        self.thread.start()

    def finish(self):
        """The exec answer (whatever it is) once curl's exec call ended."""
        self.thread.join(200)
        assert not self.thread.is_alive(), "curl in the guest did not finish"
        self.elapsed = time.monotonic() - self.started
        return self.response

    def wait(self):
        r = self.finish()
        assert r.status == 200, r
        out = r.json["stdout"]
        return out[:3], out


def pending(capsem, vm, waiters=1):
    """The one pending ask once `waiters` requests wait on it."""
    def ready():
        r = capsem.api("GET", f"/vms/{vm}/asks")
        assert r.status == 200, r
        asks = r.json["asks"]
        return asks[0] if len(asks) == 1 and asks[0]["waiters"] >= waiters else None
    return wait_for(ready, 90, f"an ask with {waiters} waiting request(s)", interval=0.1)


def resolve(capsem, vm, ask_id, **body):
    return capsem.api("POST", f"/vms/{vm}/asks/{ask_id}", body)


class Mcp:
    """capsem-mcp over stdio, speaking newline-delimited JSON-RPC."""

    def __init__(self, capsem):
        env = dict(capsem.env, CAPSEM_UDS_PATH=capsem.sock)
        self.p = subprocess.Popen([os.path.join(BIN_DIR, "capsem-mcp")], env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.next_id = 0
        init = self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                       "clientInfo": {"name": "test_asks", "version": "1"}})
        assert init["result"]["protocolVersion"] == "2025-06-18", init
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, msg):
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()

    def rpc(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        line = self.p.stdout.readline()
        assert line, "capsem-mcp closed its output"
        reply = json.loads(line)
        assert reply["id"] == self.next_id, reply
        return reply

    def call(self, name, **args):
        return self.rpc("tools/call", {"name": name, "arguments": args})["result"]

    def close(self):
        self.p.stdin.close()
        assert self.p.wait(timeout=10) == 0


@pytest.fixture(scope="module")
def mcp(capsem):
    m = Mcp(capsem)
    yield m
    m.close()


def result_text(res):
    return res["content"][0]["text"]


# ---------- error paths: need only a VM ----------

@pytest.mark.fast
def test_unknown_vm_is_404_everywhere(capsem, mcp):
    r = capsem.api("GET", "/vms/no-such-vm/asks")
    assert (r.status, r.json) == (404, {"error": "VM not found: no-such-vm"})
    r = resolve(capsem, "no-such-vm", UNKNOWN_ASK, decision="approve")
    assert (r.status, r.json) == (404, {"error": "VM not found: no-such-vm"})
    for args in (("asks", "no-such-vm"), ("approve", "no-such-vm", UNKNOWN_ASK),
                 ("deny", "no-such-vm", UNKNOWN_ASK)):
        p = capsem.cli(*args)
        assert (p.returncode, p.stderr) == (1, b"Error: VM not found: no-such-vm\n"), args
    res = mcp.call("capsem_ask_list", id="no-such-vm")
    assert res["isError"] is True
    assert result_text(res) == "404: VM not found: no-such-vm"


@pytest.mark.fast
def test_a_vm_without_asks_lists_none(capsem, vm, mcp):
    r = capsem.api("GET", f"/vms/{vm}/asks")
    assert (r.status, r.json) == (200, {"asks": []})
    p = capsem.cli("asks", vm, check=True)
    assert p.stdout == b"No pending asks.\n"
    assert json.loads(capsem.cli("asks", vm, "--json", check=True).stdout) == {"asks": []}
    res = mcp.call("capsem_ask_list", id=vm)
    assert "isError" not in res
    assert res["structuredContent"] == {"asks": []}
    assert json.loads(result_text(res)) == {"asks": []}


@pytest.mark.fast
def test_unknown_ask_id_is_404(capsem, vm, mcp):
    for decision in ("approve", "deny"):
        r = resolve(capsem, vm, UNKNOWN_ASK, decision=decision)
        assert r.status == 404, r
        assert r.json["error"].startswith(f"ask not found: {UNKNOWN_ASK} "), r
    r = resolve(capsem, vm, UNKNOWN_ASK, decision="approve", remember="always")
    assert r.status == 404 and r.json["error"].startswith(f"ask not found: {UNKNOWN_ASK} "), r
    assert not os.path.exists(os.path.join(capsem.home, "policy.toml")), \
        "nothing is written for an ask that does not exist"
    for args in (("approve", vm, UNKNOWN_ASK), ("approve", vm, UNKNOWN_ASK, "--remember",
                                                "session"), ("deny", vm, UNKNOWN_ASK)):
        p = capsem.cli(*args)
        assert p.returncode == 1, args
        assert p.stderr.decode().startswith(f"Error: ask not found: {UNKNOWN_ASK} "), p.stderr
    res = mcp.call("capsem_ask_resolve", id=vm, ask_id=UNKNOWN_ASK, decision="deny")
    assert res["isError"] is True
    assert result_text(res).startswith(f"404: ask not found: {UNKNOWN_ASK} ")


@pytest.mark.fast
def test_bad_answers_are_400(capsem, vm, mcp):
    cases = [
        ({"decision": "maybe"}, "decision must be one of: approve, deny"),
        ({}, "decision must be one of: approve, deny"),
        ({"decision": 1}, "decision must be one of: approve, deny"),
        ({"decision": "approve", "remember": "forever"},
         "remember must be one of: once, session, always"),
        ({"decision": "approve", "resolver": "guest"},
         "resolver must be one of: api, mcp, dashboard"),
    ]
    for body, msg in cases:
        r = resolve(capsem, vm, UNKNOWN_ASK, **body)
        assert (r.status, r.json) == (400, {"error": msg}), body
    r = resolve(capsem, vm, UNKNOWN_ASK, decision="deny", remember="always")
    assert r.status == 400 and "remember=always only goes with approve" in r.json["error"], r
    r = resolve(capsem, vm, "x" * 33, decision="deny")
    assert (r.status, r.json) == (400, {"error": "invalid ask id: " + "x" * 33})
    r = capsem.api("POST", f"/vms/{vm}/asks/{UNKNOWN_ASK}", raw=b"{not json")
    assert r.status == 400 and r.json["error"].startswith("malformed JSON body"), r
    # Routes: wrong method, nothing after asks/, one segment too many.
    assert capsem.api("GET", f"/vms/{vm}/asks/{UNKNOWN_ASK}").status == 405
    assert capsem.api("DELETE", f"/vms/{vm}/asks").status == 405
    assert capsem.api("POST", f"/vms/{vm}/asks/", {"decision": "deny"}).status == 404
    assert capsem.api("POST", f"/vms/{vm}/asks/a/b", {"decision": "deny"}).status == 404

    p = capsem.cli("approve", vm, UNKNOWN_ASK, "--remember", "forever")
    assert p.returncode == 2 and b"--remember must be once, session or always" in p.stderr
    p = capsem.cli("deny", vm, UNKNOWN_ASK, "--remember", "session")
    assert p.returncode == 2 and b"Error: unknown flag: --remember" in p.stderr, p.stderr
    p = capsem.cli("approve", vm)
    assert p.returncode == 2 and b"missing argument: ASK_ID" in p.stderr
    p = capsem.cli("approve", vm, "a/b")
    assert (p.returncode, p.stderr) == (1, f"Error: invalid ask id: a/b (see capsem asks {vm})\n"
                                        .encode())

    res = mcp.call("capsem_ask_resolve", id=vm, ask_id=UNKNOWN_ASK, decision="maybe")
    assert result_text(res) == "400: argument decision must be one of: approve, deny"
    res = mcp.call("capsem_ask_resolve", id=vm, ask_id="a/b", decision="deny")
    assert result_text(res) == "400: invalid ask_id: a/b"
    res = mcp.call("capsem_ask_resolve", id=vm, ask_id=UNKNOWN_ASK)
    assert result_text(res) == "400: missing required argument: decision"


def test_help_texts(capsem):
    for cmd, words in (("asks", b"asks VM [--json]"),
                       ("approve", b"--remember once|session|always"),
                       ("deny", b"deny VM ASK_ID")):
        p = capsem.cli(cmd, "--help", check=True)
        assert words in p.stdout, p.stdout
    top = capsem.cli("--help", check=True).stdout
    assert all(c in top for c in (b"asks", b"approve", b"deny"))


# ---------- the whole path: a guest request held, then answered ----------

@pytest.fixture(scope="module")
def world(capsem, tmp_path_factory):
    up = Upstream(str(tmp_path_factory.mktemp("upstream")), names=(ASK_HOST,))
    up.policy_path = os.path.join(capsem.home, "policy.toml")
    write_atomic(up.policy_path, policy_text(up, "ask-test", LONG_WAIT_S))
    yield up
    os.unlink(up.policy_path)
    up.close()


@pytest.fixture(scope="module")
def gvm(capsem, world):
    info = capsem.create(profile_id="code", ram_mb=1024, cpus=2)
    capsem.exec(info["id"], "true")  # booted
    yield info["id"]
    capsem.delete(info["id"])


def arrived(world, path):
    return [e for e in world.log if e["path"] == path]


def test_approved_through_the_api_the_request_passes(capsem, gvm, world):
    curl = Curl(capsem, gvm, f"https://{ASK_HOST}/hello?t=api")
    ask = pending(capsem, gvm)
    assert re.fullmatch(r"[0-9a-f]{12}", ask["ask_id"]), ask
    assert ask["scope"] == "net" and ask["host"] == ASK_HOST and ask["port"] == 443
    assert ask["method"] == "GET" and ask["path"] == "/hello"
    assert ask["rule"] == "user:ask-test"
    assert ask["reason"] == f"the user decides about {ASK_HOST}"
    # The guest agent names the process when it finds it within 50 ms, else "?".
    assert ask["process"] in ("curl", "?") and ask["vm_id"] == gvm
    assert 0 < ask["expires_in_ms"] <= LONG_WAIT_S * 1000
    assert not arrived(world, "/hello?t=api"), "held requests do not reach the upstream"

    r = resolve(capsem, gvm, ask["ask_id"], decision="approve")
    assert r.status == 200, r
    assert r.json["ask"]["ask_id"] == ask["ask_id"] and r.json["ask"]["status"] == "approved"
    code, out = curl.wait()
    assert code == "200", out
    assert out.endswith("hello from ask.test\n"), out
    assert len(arrived(world, "/hello?t=api")) == 1
    assert capsem.api("GET", f"/vms/{gvm}/asks").json == {"asks": []}
    assert resolve(capsem, gvm, ask["ask_id"], decision="deny").status == 404, "answered once"

    row = decision_row(capsem, gvm, ask["ask_id"], "approved")
    assert (row["subject"], row["action"], row["rule_source"], row["rule_id"]) == \
        ("net", "ask", "user", "ask-test")
    assert (row["resolver"], row["remember"], row["host"], row["port"], row["method"]) == \
        ("api", 0, ASK_HOST, 443, "GET")
    assert row["process_name"] == ask["process"] and 0 <= row["waited_ms"] < LONG_WAIT_S * 1000


def test_cli_lists_and_denies(capsem, gvm, world):
    curl = Curl(capsem, gvm, f"https://{ASK_HOST}/hello?t=cli")
    ask = pending(capsem, gvm)
    table = capsem.cli("asks", gvm, check=True).stdout.decode().splitlines()
    assert table[0].split() == ["ASK", "DESTINATION", "REQUEST", "RULE", "PROCESS", "WAITING",
                                "EXPIRES"]
    cells = table[1].split()
    assert cells[:7] == [ask["ask_id"], f"{ASK_HOST}:443", "GET", "/hello", "user:ask-test",
                         ask["process"], "1"], table
    assert re.fullmatch(r"\d+s", cells[7]), table
    assert table[2].strip() == f"reason: the user decides about {ASK_HOST}"

    p = capsem.cli("deny", gvm, ask["ask_id"], check=True)
    assert p.stdout.decode() == f"Denied {ask['ask_id']} ({ASK_HOST}:443; 1 request waiting)\n"
    code, out = curl.wait()
    assert code == "403", out
    assert "X-Capsem-Reason: ask_denied" in out and "rule: user:ask-test" in out, out
    assert not arrived(world, "/hello?t=cli")
    row = decision_row(capsem, gvm, ask["ask_id"], "denied")
    assert (row["resolver"], row["remember"]) == ("api", 0)


def test_identical_requests_share_one_ask_answered_through_mcp(capsem, gvm, world, mcp):
    curls = [Curl(capsem, gvm, f"https://{ASK_HOST}/hello?t=mcp{i}", tag=f"m{i}")
             for i in range(2)]
    ask = pending(capsem, gvm, waiters=2)
    listed = mcp.call("capsem_ask_list", id=gvm)["structuredContent"]["asks"]
    assert [a["ask_id"] for a in listed] == [ask["ask_id"]]
    res = mcp.call("capsem_ask_resolve", id=gvm, ask_id=ask["ask_id"], decision="approve")
    assert "isError" not in res, res
    assert res["structuredContent"]["ask"]["status"] == "approved"
    assert res["structuredContent"]["ask"]["waiters"] == 2
    for i, c in enumerate(curls):
        code, out = c.wait()
        assert code == "200", out
        assert len(arrived(world, f"/hello?t=mcp{i}")) == 1
    row = decision_row(capsem, gvm, ask["ask_id"], "approved")
    assert row["resolver"] == "mcp"
    assert len(rows(capsem, gvm, "SELECT id FROM policy_decisions WHERE event_id = ?",
                    (ask["ask_id"],))) == 1, "one row for the coalesced ask"


def test_remember_session_answers_later_requests_at_once(capsem, gvm, world):
    set_policy(capsem, gvm, world, "ask-session")
    first = Curl(capsem, gvm, f"https://{ASK_HOST}/hello?t=s1")
    ask = pending(capsem, gvm)
    p = capsem.cli("approve", gvm, ask["ask_id"], "--remember", "session", check=True)
    assert p.stdout.decode().splitlines() == [
        f"Approved {ask['ask_id']} ({ASK_HOST}:443; 1 request waiting)",
        "Identical requests of this VM are approved until it stops."]
    assert first.wait()[0] == "200"
    second = Curl(capsem, gvm, f"https://{ASK_HOST}/hello?t=s2", tag="s2").wait()
    assert second[0] == "200", second
    assert capsem.api("GET", f"/vms/{gvm}/asks").json == {"asks": []}
    row = decision_row(capsem, gvm, ask["ask_id"], "approved")
    assert row["remember"] == 1
    later = wait_for(lambda: rows(capsem, gvm, "SELECT * FROM policy_decisions WHERE "
                                  "status = 'remembered' AND rule_id = 'ask-session'"),
                     10, "the remembered row", interval=0.2)
    assert (later[0]["resolver"], later[0]["host"], later[0]["method"]) == \
        ("policy", ASK_HOST, "GET")


def test_remember_always_writes_an_allow_rule(capsem, gvm, world):
    set_policy(capsem, gvm, world, "ask-always")
    curl = Curl(capsem, gvm, f"https://{ASK_HOST}/hello?t=always")
    ask = pending(capsem, gvm)
    before = reloads(capsem, gvm)
    mode = os.stat(world.policy_path).st_mode & 0o777
    r = resolve(capsem, gvm, ask["ask_id"], decision="approve", remember="always")
    assert r.status == 200, r
    assert r.json["policy_rule"] == {"id": "approved-ask.test-443", "source": "user"}
    assert curl.wait()[0] == "200"

    with open(world.policy_path, "rb") as f:
        doc = tomllib.load(f)
    assert doc["rule"][0] == {"id": "approved-ask.test-443", "action": "allow",
                              "host": ASK_HOST, "ports": [443]}
    assert doc["rule"][1]["id"] == "ask-always", "the user's rules are kept, after it"
    assert doc["policy"]["ask_timeout_s"] == LONG_WAIT_S
    with open(world.policy_path) as f:
        assert f"# added by capsem: ask {ask['ask_id']} (VM " in f.read(), "a comment says why"
    assert os.stat(world.policy_path).st_mode & 0o777 == mode, "the file keeps its mode"

    # The VM reloads the file: a POST (not remembered: other method) goes
    # through without an ask, on the new rule.
    wait_for(lambda: reloads(capsem, gvm) > before, 15, "the reload of policy.toml")
    code, out = Curl(capsem, gvm, f"https://{ASK_HOST}/echo", method="POST", tag="p").wait()
    assert code == "200", out
    assert capsem.api("GET", f"/vms/{gvm}/asks").json == {"asks": []}
    net = wait_for(lambda: rows(capsem, gvm, "SELECT * FROM net_events WHERE path = '/echo'"),
                   10, "the /echo row", interval=0.2)
    assert net[0]["matched_rule"] == "user:approved-ask.test-443"

    # A file written with [[rule]] tables, whose rule ids already include the
    # one capsem would pick: the new rule gets a unique id and goes first.
    before = reloads(capsem, gvm)
    write_atomic(world.policy_path, textwrap.dedent(f"""\
        # my policy
        schema = 1
        [policy]
        ask_timeout_s = {LONG_WAIT_S}
        [network]
        upstream_override = [
          {{ target = "{ASK_HOST}:443", dial = "127.0.0.1:{world.port}", ca_file = "{world.ca}" }},
        ]

        # keep this comment
        [[rule]]
        id = "approved-ask.test-443"
        action = "block"
        host = "elsewhere.test"

        [[rule]]
        id = "ask-always"
        action = "ask"
        host = "{ASK_HOST}"
        """))
    wait_for(lambda: reloads(capsem, gvm) > before, 15, "the reload of policy.toml")
    curl = Curl(capsem, gvm, f"https://{ASK_HOST}/hello?t=always2", method="PUT", tag="u")
    ask = pending(capsem, gvm)
    r = resolve(capsem, gvm, ask["ask_id"], decision="approve", remember="always")
    assert r.status == 200, r
    assert r.json["policy_rule"]["id"] == "approved-ask.test-443-2"
    code, out = curl.wait()
    assert code == "501", out  # through capsem; the test server has no PUT
    with open(world.policy_path, "rb") as f:
        doc = tomllib.load(f)
    assert [rule["id"] for rule in doc["rule"]] == \
        ["approved-ask.test-443-2", "approved-ask.test-443", "ask-always"]
    assert doc["rule"][0] == {"id": "approved-ask.test-443-2", "action": "allow",
                              "host": ASK_HOST, "ports": [443]}
    with open(world.policy_path) as f:
        text = f.read()
    assert text.startswith("# my policy\nschema = 1\n") and "# keep this comment\n" in text


def test_unanswered_ask_times_out_with_403(capsem, gvm, world):
    set_policy(capsem, gvm, world, "ask-timeout", timeout_s=SHORT_WAIT_S)
    curl = Curl(capsem, gvm, f"https://{ASK_HOST}/hello?t=timeout")
    ask = pending(capsem, gvm)
    assert ask["expires_in_ms"] <= SHORT_WAIT_S * 1000
    code, out = curl.wait()
    assert code == "403", out
    assert "X-Capsem-Reason: ask_timeout" in out and "rule: user:ask-timeout" in out, out
    assert curl.elapsed >= SHORT_WAIT_S - 0.5
    assert not arrived(world, "/hello?t=timeout")
    assert capsem.api("GET", f"/vms/{gvm}/asks").json == {"asks": []}
    row = decision_row(capsem, gvm, ask["ask_id"], "timeout")
    assert row["resolver"] == "timeout"
    assert SHORT_WAIT_S * 1000 - 100 <= row["waited_ms"] < SHORT_WAIT_S * 1000 + 5000
    r = resolve(capsem, gvm, ask["ask_id"], decision="approve")
    assert r.status == 404, "a timed-out ask cannot be answered"


def test_pending_asks_end_with_the_vm(capsem, world):
    """A VM that stops while a request is held: the process exits cleanly (no
    leak, no crash under the sanitizers) and the ask's row says why."""
    write_atomic(world.policy_path, policy_text(world, "ask-stop", LONG_WAIT_S))
    info = capsem.create(name="asks-stop", profile_id="code", ram_mb=1024, cpus=2)
    vm = info["id"]
    db = os.path.join(capsem.home, "run", "persistent", vm, "session.db")

    def ask_row(ask_id):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT status, resolver, reason FROM policy_decisions "
                               "WHERE event_id = ?", (ask_id,)).fetchall()
        finally:
            con.close()

    try:
        capsem.exec(vm, "true")
        curl = Curl(capsem, vm, f"https://{ASK_HOST}/hello?t=stop")
        ask = pending(capsem, vm)
        r = capsem.api("POST", f"/vms/{vm}/stop")
        assert r.status == 200, r
        r = curl.finish()
        assert (r.status, r.json) == (500, {"error": "the VM process exited"})
        assert capsem.api("GET", f"/vms/{vm}/asks").json == {"asks": []}
        r = resolve(capsem, vm, ask["ask_id"], decision="approve")
        assert (r.status, r.json) == (404, {"error": f"ask not found: {ask['ask_id']} "
                                                    "(VM asks-stop is not running)"})
        # The process writes its last rows while it exits, after the stop answer.
        wait_for(lambda: ask_row(ask["ask_id"]) == [("denied", "policy", "vm_stopped")], 15,
                 "the ask row to be closed")
        assert not arrived(world, "/hello?t=stop")
    finally:
        capsem.delete(vm)
