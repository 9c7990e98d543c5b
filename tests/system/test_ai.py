"""AI traffic interpreters in the proxy (network.md sections 11 and 12) from
inside a real guest: curl and python call Anthropic-, OpenAI- (chat and
responses) and Gemini-shaped endpoints, streamed and not, and every call
leaves a model_calls row (tokens, stop reason, cost from share/prices.json
plus the $CAPSEM_HOME/prices.json override) and tool_calls rows that a
later request's tool results move to `responded`. Also: SSE is forwarded
as it arrives, interpreted requests ask for identity encoding, and host-held
credentials replace the guest's placeholders only on the upstream leg.

The stand-in server (upstream.py) answers for the three provider hosts; the
user policy points them at it with upstream overrides. Ids in the answers
are built from the request's x-test-id header, so each test finds its rows
by message_id."""
import json
import os
import shlex
import textwrap
import threading
import uuid

import pytest

from conftest import wait_for
from guestdb import rows, sh, wait_rows, write_credentials
from upstream import TEXT, THINKING, TOKENS, Upstream

HOSTS = ("api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com")
SECRETS = {"anthropic": "sk-ant-systest-0123456789abcdef",
           "openai": "sk-proj-systest-0123456789abcdef",
           "google": "AIzaSystest0123456789abcdef"}
OVERRIDE = {"version": "systest-1",
            "models": [{"provider": "anthropic", "model": "capsem-test-model", "input": 1.0,
                        "output": 2.0, "cache_read": 0.5, "cache_write": 4.0}]}
SHARE = os.environ.get("CAPSEM_SHARE_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "share")
GEMINI = "/v1beta/models/gemini-2.5-flash"


# ---------- prices (the rules of src/lib/ai/prices.h, restated) ----------

def load_prices():
    with open(os.path.join(SHARE, "prices.json")) as f:
        bundled = json.load(f)
    entries = {(m["provider"], m["model"]): m for m in bundled["models"]}
    for m in OVERRIDE["models"]:
        entries[(m["provider"], m["model"])] = m
    return f'{bundled["version"]}+{OVERRIDE["version"]}', entries


PRICE_VERSION, PRICES = load_prices()


def expected_cost(provider, model, inp, cache_read, cache_write, out):
    """USD, or None where capsem must record NULL."""
    mine = {m: e for (p, m), e in PRICES.items() if p == provider}
    entry = mine.get(model)
    if entry is None:
        fits = [m for m in mine if model.startswith(m) and
                (m[-1] in "-@:" or model[len(m)] in "-@:")]
        entry = mine[max(fits, key=len)] if fits else None
    if entry is None or entry.get("unpriced") or inp is None or out is None:
        return None
    tier = dict(entry)
    lc = entry.get("long_context")
    if lc and inp + (cache_read or 0) + (cache_write or 0) > lc["threshold"]:
        tier.update({k: v for k, v in lc.items() if k != "threshold"})
    total = inp * tier["input"] + out * tier["output"]
    for kind, n in (("cache_read", cache_read), ("cache_write", cache_write)):
        if n:
            if kind not in tier:
                return None
            total += n * tier[kind]
    return total / 1e6


def expected_tokens(protocol, cached=False):
    t = TOKENS["gemini" if protocol.startswith("gemini") else protocol]
    if protocol == "anthropic":
        return dict(input_tokens=t["input"], cache_read_tokens=t["cache_read"],
                    cache_write_tokens=t["cache_write"], output_tokens=t["output"],
                    thinking_tokens=None)
    if protocol == "openai-chat":
        return dict(input_tokens=t["prompt"] - t["cached"], cache_read_tokens=t["cached"],
                    cache_write_tokens=None, output_tokens=t["completion"],
                    thinking_tokens=t["reasoning"])
    if protocol == "openai-responses":
        return dict(input_tokens=t["input"] - t["cached"], cache_read_tokens=t["cached"],
                    cache_write_tokens=None, output_tokens=t["output"],
                    thinking_tokens=t["reasoning"])
    c = t["cached"] if cached else 0
    return dict(input_tokens=t["prompt"] - c, cache_read_tokens=c, cache_write_tokens=None,
                output_tokens=t["candidates"] + t["thoughts"], thinking_tokens=t["thoughts"])


# ---------- requests in the providers' shapes ----------

PROTOCOLS = {
    # name: (host, path, model, provider, protocol column, id prefix, stop reasons text/tools)
    "anthropic": ("api.anthropic.com", "/v1/messages", "claude-sonnet-4-5-20250929",
                  "anthropic", "anthropic-messages", "msg_", ("end_turn", "tool_use")),
    "openai-chat": ("api.openai.com", "/v1/chat/completions", "gpt-4o-2024-08-06", "openai",
                    "openai-chat", "chatcmpl-", ("stop", "tool_calls")),
    "openai-responses": ("api.openai.com", "/v1/responses", "gpt-5-2025-08-07", "openai",
                         "openai-responses", "resp_", ("completed", "completed")),
    "gemini-json": ("generativelanguage.googleapis.com", GEMINI + ":generateContent",
                    "gemini-2.5-flash", "google", "gemini", "gem_", ("STOP", "STOP")),
    "gemini-sse": ("generativelanguage.googleapis.com", GEMINI + ":streamGenerateContent?alt=sse",
                   "gemini-2.5-flash", "google", "gemini", "gem_", ("STOP", "STOP")),
    "gemini-array": ("generativelanguage.googleapis.com", GEMINI + ":streamGenerateContent",
                     "gemini-2.5-flash", "google", "gemini", "gem_", ("STOP", "STOP")),
}


def request_body(protocol, stream=False, tools=(), model=None, history=()):
    """A first-turn request (plus `history` turns appended after it)."""
    model = model or PROTOCOLS[protocol][2]
    if protocol == "anthropic":
        body = {"model": model, "max_tokens": 256, "stream": stream, "system": "Be brief.",
                "messages": [{"role": "user", "content": "hi"}, *history]}
        if tools:
            body["tools"] = [{"name": n, "description": "t", "input_schema": {"type": "object"}}
                             for n in tools]
    elif protocol == "openai-chat":
        body = {"model": model, "stream": stream,
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "hi"}, *history]}
        if stream:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = [{"type": "function", "function": {
                "name": n, "parameters": {"type": "object"}}} for n in tools]
    elif protocol == "openai-responses":
        body = {"model": model, "stream": stream, "instructions": "Be brief.",
                "input": [{"role": "user", "content": "hi"}, *history]}
        if tools:
            body["tools"] = [{"type": "function", "name": n, "parameters": {"type": "object"}}
                             for n in tools]
    else:
        body = {"systemInstruction": {"parts": [{"text": "Be brief."}]},
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}, *history]}
        if tools:
            body["tools"] = [{"functionDeclarations": [{"name": n} for n in tools]}]
    return body


def tool_history(protocol, calls, errors=()):
    """The assistant turn that asked for `calls` [(call_id, name)] and the
    turn answering each with "result <i>" (is_error for names in errors)."""
    if protocol == "anthropic":
        return [{"role": "assistant", "content": [
                    {"type": "tool_use", "id": c, "name": n, "input": {}} for c, n in calls]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": c, "content": f"result {i}",
                     "is_error": n in errors} for i, (c, n) in enumerate(calls)]}]
    if protocol == "openai-chat":
        return [{"role": "assistant", "content": None, "tool_calls": [
                    {"id": c, "type": "function", "function": {"name": n, "arguments": "{}"}}
                    for c, n in calls]},
                *[{"role": "tool", "tool_call_id": c, "content": f"result {i}"}
                  for i, (c, n) in enumerate(calls)]]
    if protocol == "openai-responses":
        return [*[{"type": "function_call", "call_id": c, "name": n, "arguments": "{}"}
                  for c, n in calls],
                *[{"type": "function_call_output", "call_id": c, "output": f"result {i}"}
                  for i, (c, n) in enumerate(calls)]]
    return [{"role": "model", "parts": [{"functionCall": {"name": n, "args": {}}}
                                        for _, n in calls]},
            {"role": "user", "parts": [{"functionResponse": {"name": n, "response": {
                "result": f"result {i}"}}} for i, (_, n) in enumerate(calls)]}]


# ---------- fixtures ----------

def policy_text(port, ca, log_model_content=True):
    overrides = ",\n".join(f'  {{ target = "{h}:443", dial = "127.0.0.1:{port}", '
                           f'ca_file = "{ca}" }}' for h in HOSTS)
    return textwrap.dedent("""\
        schema = 1
        [network]
        log_model_content = {content}
        upstream_override = [
        {overrides}
        ]
        """).format(content="true" if log_model_content else "false", overrides=overrides)


@pytest.fixture(scope="module")
def world(capsem, tmp_path_factory):
    up = Upstream(str(tmp_path_factory.mktemp("ai-upstream")), names=HOSTS)
    files = {name: os.path.join(capsem.home, name)
             for name in ("policy.toml", "credentials.toml", "prices.json")}
    with open(files["policy.toml"], "w") as f:
        f.write(policy_text(up.port, up.ca))
    write_credentials(capsem.home, **SECRETS)
    with open(files["prices.json"], "w") as f:
        json.dump(OVERRIDE, f)
    up.policy_path = files["policy.toml"]
    yield up
    for path in files.values():
        os.unlink(path)
    up.close()


@pytest.fixture(scope="module")
def avm(capsem, world):
    info = capsem.create(profile_id="code", ram_mb=1024, cpus=2)
    yield info["id"]
    capsem.delete(info["id"])








def model_row(capsem, vm, message_id):
    return wait_rows(capsem, vm, "SELECT * FROM model_calls WHERE message_id = ?",
                     (message_id,), what=f"the model_calls row of {message_id}")[0]


PY_CLIENT = textwrap.dedent("""\
    import http.client, ssl, sys
    host, path, body, tid = sys.argv[1:5]
    c = http.client.HTTPSConnection(host, 443, context=ssl.create_default_context(), timeout=60)
    c.request("POST", path, body=open(body, "rb").read(),
              headers={"content-type": "application/json", "x-test-id": tid})
    r = c.getresponse()
    out = b""
    while True:
        chunk = r.read1(65536)  # whatever has arrived
        if not chunk:
            break
        out += chunk
    sys.stdout.write(f"{r.status}\\n{out.decode()}")
    """)


def post(capsem, vm, protocol, body, tid, client="curl", headers=(), url_suffix=""):
    """POSTs body from the guest; returns (status, response text). headers are
    "Name: value" strings, expanded by the guest shell ($VARS work)."""
    host, path = PROTOCOLS[protocol][0], PROTOCOLS[protocol][1] + url_suffix
    write = f"cat > /tmp/{tid}.json <<'EOF'\n{json.dumps(body)}\nEOF\n"
    if client == "python":
        cmd = (write + "cat > /tmp/aiclient.py <<'EOF'\n" + PY_CLIENT + "EOF\n" +
               f"python3 /tmp/aiclient.py {host} {shlex.quote(path)} /tmp/{tid}.json {tid}")
    else:
        hdrs = " ".join(f'-H "{h}"' for h in ("content-type: application/json",
                                              f"x-test-id: {tid}", *headers))
        cmd = (write + f"curl -sS -N --max-time 60 -o /tmp/{tid}.out -w '%{{http_code}}\\n' "
               f'{hdrs} --data-binary @/tmp/{tid}.json "https://{host}{path}"'
               f" && cat /tmp/{tid}.out")
    r = sh(capsem, vm, cmd)
    assert r["exit_code"] == 0, r
    status, _, text = r["stdout"].partition("\n")
    return int(status), text


def new_tid():
    return "t" + uuid.uuid4().hex[:12]


def check_model_row(capsem, vm, row, protocol, stream, client, tools=0, model=None):
    host, path, default_model, provider, proto_col, _, stops = PROTOCOLS[protocol]
    model = model or default_model
    assert row["provider"] == provider
    assert row["protocol"] == proto_col
    assert row["model"] == model
    # The guest names the process within a 50 ms budget, else "?" and pid 0
    # (network.md 2 step 5; it happens under TCG): the row says what net_events says.
    assert row["process_name"] in ("python3" if client == "python" else "curl", "?")
    assert (row["pid"] is None) == (row["process_name"] == "?"), row
    assert row["pid"] is None or row["pid"] > 1
    assert row["method"] == "POST"
    assert row["path"] == path.split("?")[0]
    assert row["stream"] == (1 if stream else 0)
    assert row["status_code"] == 200
    assert row["parse_status"] == "ok", row
    assert row["stop_reason"] == stops[1 if tools else 0]
    tokens = expected_tokens(protocol)
    assert {k: row[k] for k in tokens} == tokens
    cost = expected_cost(provider, model, tokens["input_tokens"], tokens["cache_read_tokens"],
                         tokens["cache_write_tokens"], tokens["output_tokens"])
    assert cost is not None
    assert row["estimated_cost_usd"] == pytest.approx(cost, rel=1e-9)
    assert row["price_table_version"] == PRICE_VERSION
    assert row["system_prompt_preview"] == "Be brief."
    assert row["messages_count"] == (2 if protocol == "openai-chat" else 1)
    assert row["tools_count"] == tools
    assert row["thinking_content"] == (None if protocol == "openai-chat" else THINKING)
    assert row["text_content"] == (None if tools and protocol == "openai-chat" else TEXT)
    usage = json.loads(row["usage_details"])
    assert isinstance(usage, dict) and usage
    assert row["duration_ms"] is not None and row["duration_ms"] >= 0
    if stream:
        assert row["ttft_ms"] is not None and 0 <= row["ttft_ms"] <= row["duration_ms"]
    assert row["request_bytes"] > 0 and row["response_bytes"] > 0
    net = rows(capsem, vm, "SELECT * FROM net_events WHERE id = ?", (row["net_event_id"],))
    assert len(net) == 1, row
    assert net[0]["domain"] == host and net[0]["path"] == path.split("?")[0]
    assert net[0]["status_code"] == 200 and net[0]["decision"] == "allowed"
    assert net[0]["bytes_received"] == row["response_bytes"]
    assert (net[0]["process_name"], net[0]["pid"]) == (row["process_name"], row["pid"])


# ---------- tests ----------

CASES = [(p, s, c) for p in ("anthropic", "openai-chat", "openai-responses")
         for s in (False, True) for c in ("curl", "python")] + \
        [(p, p != "gemini-json", c) for p in ("gemini-json", "gemini-sse", "gemini-array")
         for c in ("curl", "python")]


@pytest.mark.parametrize("protocol,stream,client", CASES,
                         ids=[f"{p}-{'stream' if s else 'json'}-{c}" for p, s, c in CASES])
def test_model_call_row(capsem, avm, world, protocol, stream, client):
    tid = new_tid()
    status, text = post(capsem, avm, protocol, request_body(protocol, stream), tid, client)
    assert status == 200, text
    # Forwarded unchanged: the guest got the provider's bytes.
    assert "from the stand-in" in text
    assert ("data: " in text) == (stream and protocol != "gemini-array")
    row = model_row(capsem, avm, PROTOCOLS[protocol][5] + tid)
    check_model_row(capsem, avm, row, protocol, stream, client)
    assert not rows(capsem, avm, "SELECT * FROM tool_calls WHERE model_call_id = ?", (row["id"],))


TOOL_CASES = [("anthropic", True), ("anthropic", False), ("openai-chat", True),
              ("openai-chat", False), ("openai-responses", True), ("openai-responses", False),
              ("gemini-sse", True), ("gemini-json", False)]


@pytest.mark.parametrize("protocol,stream", TOOL_CASES,
                         ids=[f"{p}-{'stream' if s else 'json'}" for p, s in TOOL_CASES])
def test_tool_calls_requested_then_responded(capsem, avm, world, protocol, stream):
    tools = ("get_weather", "local__fetch_http")
    gemini = protocol.startswith("gemini")
    tid = new_tid()
    status, text = post(capsem, avm, protocol, request_body(protocol, stream, tools), tid)
    assert status == 200, text
    row = model_row(capsem, avm, PROTOCOLS[protocol][5] + tid)
    check_model_row(capsem, avm, row, protocol, stream, "curl", tools=2)
    calls = wait_rows(capsem, avm, "SELECT * FROM tool_calls WHERE model_call_id = ? "
                      "ORDER BY call_index", (row["id"],), what="two tool_calls rows", count=2)
    assert len(calls) == 2
    sse = stream and protocol != "gemini-array"
    for i, (call, name) in enumerate(zip(calls, tools)):
        assert call["provider"] == PROTOCOLS[protocol][3]
        assert call["status"] == "requested"
        assert call["call_index"] == i
        assert call["call_id"] == (None if gemini else f"call_{tid}_{i}")
        assert call["tool_name"] == name
        assert json.loads(call["arguments"]) == {"n": i, "tool": name}
        assert call["origin"] == ("local" if name.startswith("local__") else "native")
        assert call["server_name"] == ("local" if name.startswith("local__") else None)
        assert call["transport"] == ("sse" if sse else "http")
        assert call["process_name"] == row["process_name"]
        assert call["response_preview"] is None
    # The next turn carries the results: the rows are answered.
    errors = ("local__fetch_http",) if protocol == "anthropic" else ()
    history = tool_history(protocol, [(f"call_{tid}_{i}", n) for i, n in enumerate(tools)],
                           errors)
    tid2 = new_tid()
    status, text = post(capsem, avm, protocol, request_body(protocol, stream, tools,
                                                            history=history), tid2)
    assert status == 200, text
    second = model_row(capsem, avm, PROTOCOLS[protocol][5] + tid2)
    assert second["stop_reason"] == PROTOCOLS[protocol][6][0]  # answered: text, no calls
    want = ["error" if n in errors else "responded" for n in tools]
    done = wait_for(lambda: (lambda r: r if [c["status"] for c in r] == want else None)(
        rows(capsem, avm, "SELECT * FROM tool_calls WHERE model_call_id = ? ORDER BY call_index",
             (row["id"],))), 15, f"tool calls marked {want}", interval=0.2)
    for i, call in enumerate(done):
        assert f"result {i}" in call["response_preview"], call
        assert call["duration_ms"] is not None and call["duration_ms"] >= 0
    assert not rows(capsem, avm, "SELECT * FROM tool_calls WHERE model_call_id = ?",
                    (second["id"],))


def test_sse_first_event_reaches_the_guest_before_the_last_is_sent(capsem, avm, world):
    tid = new_tid()
    body = request_body("anthropic", stream=True)
    world.httpd.release.clear()
    world.httpd.holding.clear()
    job = {}

    def run():
        job["r"] = post(capsem, avm, "anthropic", body, tid, headers=("x-test-hold: 1",))
    t = threading.Thread(target=run)
    t.start()
    try:
        wait_for(world.httpd.holding.is_set, 60, "the server to hold the last event")
        seen = wait_for(lambda: (lambda o: o if "text_delta" in o else None)(
            sh(capsem, avm, f"cat /tmp/{tid}.out 2>/dev/null")["stdout"]), 60,
            "the first events in the guest while the last is held")
        assert "message_start" in seen and "message_stop" not in seen
        assert world.httpd.holding.is_set()  # the server still has not sent the last
        assert not rows(capsem, avm, "SELECT * FROM model_calls WHERE message_id = ?",
                        ("msg_" + tid,))  # the row comes at the end of the call
    finally:
        world.httpd.holding.clear()
        world.httpd.release.set()
        t.join(90)
    status, text = job["r"]
    assert status == 200 and "message_stop" in text
    row = model_row(capsem, avm, "msg_" + tid)
    check_model_row(capsem, avm, row, "anthropic", True, "curl")
    assert row["ttft_ms"] < row["duration_ms"]


def test_interpreted_requests_ask_for_identity_encoding(capsem, avm, world):
    tid = new_tid()
    status, _ = post(capsem, avm, "anthropic", request_body("anthropic"), tid,
                     headers=("Accept-Encoding: gzip, br",))
    assert status == 200
    got = [e for e in world.log if e["headers"].get("x-test-id") == tid]
    assert len(got) == 1 and got[0]["headers"]["accept-encoding"] == "identity"
    # Not an interpreted endpoint: the header passes unchanged.
    r = sh(capsem, avm, "curl -sS -X POST -H 'Accept-Encoding: gzip, br' -H 'x-test-id: echo-"
                        f"{tid}' --data-binary x https://api.anthropic.com/echo")
    assert r["exit_code"] == 0, r
    assert json.loads(r["stdout"])["headers"]["accept-encoding"] == "gzip, br"


def test_credentials_replace_placeholders_upstream_only(capsem, avm, world):
    env = sh(capsem, avm, "echo $ANTHROPIC_API_KEY; echo $OPENAI_API_KEY; echo $GEMINI_API_KEY")
    placeholders = env["stdout"].split()
    assert [p.rsplit("-", 1)[0] for p in placeholders] == [
        f"capsem-placeholder-{p}" for p in ("anthropic", "openai", "google")], env
    assert not any(s in env["stdout"] for s in SECRETS.values())
    tids = {p: new_tid() for p in ("anthropic", "openai-chat", "gemini-json", "gemini-header")}
    post(capsem, avm, "anthropic", request_body("anthropic"), tids["anthropic"],
         headers=("x-api-key: $ANTHROPIC_API_KEY",))
    post(capsem, avm, "openai-chat", request_body("openai-chat"), tids["openai-chat"],
         headers=("Authorization: Bearer $OPENAI_API_KEY",))
    status, _ = post(capsem, avm, "gemini-json", request_body("gemini-json"),
                     tids["gemini-json"], url_suffix="?key=$GEMINI_API_KEY")
    assert status == 200
    post(capsem, avm, "gemini-json", request_body("gemini-json"), tids["gemini-header"],
         headers=("x-goog-api-key: $GEMINI_API_KEY",))
    seen = {p: [e for e in world.log if e["headers"].get("x-test-id") == t]
            for p, t in tids.items()}
    assert all(len(v) == 1 for v in seen.values()), seen
    assert seen["anthropic"][0]["headers"]["x-api-key"] == SECRETS["anthropic"]
    assert seen["openai-chat"][0]["headers"]["authorization"] == "Bearer " + SECRETS["openai"]
    assert seen["gemini-json"][0]["path"] == f"{GEMINI}:generateContent?key={SECRETS['google']}"
    assert seen["gemini-header"][0]["headers"]["x-goog-api-key"] == SECRETS["google"]
    # The calls are still interpreted and recorded.
    row = model_row(capsem, avm, "gem_" + tids["gemini-json"])
    assert row["path"] == f"{GEMINI}:generateContent" and row["parse_status"] == "ok"
    net = rows(capsem, avm, "SELECT * FROM net_events WHERE id = ?", (row["net_event_id"],))
    assert SECRETS["google"] not in json.dumps(net)


def test_provider_error_is_recorded_without_tokens(capsem, avm, world):
    tid = new_tid()
    status, text = post(capsem, avm, "anthropic", request_body("anthropic"), tid,
                        headers=("x-test-status: 429",))
    assert status == 429 and "rate_limit_error" in text
    row = wait_rows(capsem, avm, "SELECT m.* FROM model_calls m JOIN net_events n "
                    "ON m.net_event_id = n.id WHERE n.status_code = 429 AND m.provider = "
                    "'anthropic'", what="the 429 model call")[-1]
    assert row["status_code"] == 429
    assert row["input_tokens"] is None and row["output_tokens"] is None
    assert row["estimated_cost_usd"] is None
    assert row["model"] == PROTOCOLS["anthropic"][2]  # from the request


def test_costs_follow_the_price_table(capsem, avm, world):
    # A model only the $CAPSEM_HOME/prices.json override knows.
    tid = new_tid()
    post(capsem, avm, "anthropic", request_body("anthropic", model="capsem-test-model-2"), tid)
    row = model_row(capsem, avm, "msg_" + tid)
    t = expected_tokens("anthropic")
    assert row["model"] == "capsem-test-model-2"
    assert row["estimated_cost_usd"] == pytest.approx(
        (t["input_tokens"] * 1.0 + t["cache_read_tokens"] * 0.5 + t["cache_write_tokens"] * 4.0 +
         t["output_tokens"] * 2.0) / 1e6, rel=1e-9)
    assert row["price_table_version"] == PRICE_VERSION
    # Unknown model: NULL, never a guess.
    tid = new_tid()
    assert expected_cost("anthropic", "claude-unknown-9", 1, 0, 0, 1) is None
    post(capsem, avm, "anthropic", request_body("anthropic", model="claude-unknown-9"), tid)
    assert model_row(capsem, avm, "msg_" + tid)["estimated_cost_usd"] is None
    # Cached tokens of a kind the entry has no price for: NULL.
    tid = new_tid()
    post(capsem, avm, "gemini-json", request_body("gemini-json"), tid,
         headers=("x-test-cached: 1",))
    row = model_row(capsem, avm, "gem_" + tid)
    assert {k: row[k] for k in expected_tokens("gemini", True)} == expected_tokens("gemini", True)
    assert expected_cost("google", "gemini-2.5-flash", 600, 200, None, 70) is None
    assert row["estimated_cost_usd"] is None


def test_log_model_content_off_keeps_counts_drops_previews(capsem, avm, world):
    with open(world.policy_path, "w") as f:
        f.write(policy_text(world.port, world.ca, log_model_content=False))
    try:
        def quiet_row():
            tid = new_tid()
            post(capsem, avm, "anthropic", request_body("anthropic", True), tid)
            row = model_row(capsem, avm, "msg_" + tid)
            return row if row["text_content"] is None else None
        row = wait_for(quiet_row, 30, "the policy without model content to apply", interval=0.5)
        assert row["thinking_content"] is None
        assert row["system_prompt_preview"] == "Be brief."  # not content the model wrote
        assert {k: row[k] for k in expected_tokens("anthropic")} == expected_tokens("anthropic")
        assert row["stop_reason"] == "end_turn" and row["parse_status"] == "ok"
    finally:
        with open(world.policy_path, "w") as f:
            f.write(policy_text(world.port, world.ca))


def test_rows_name_the_guest_processes(capsem, avm, world):
    """The process columns come from the guest relay: a lookup may miss its
    budget now and then, not every time."""
    def named(client, want):
        tid = new_tid()
        post(capsem, avm, "openai-chat", request_body("openai-chat"), tid, client)
        row = model_row(capsem, avm, "chatcmpl-" + tid)
        return row if row["process_name"] == want else None
    for client, want in (("curl", "curl"), ("python", "python3")):
        row = wait_for(lambda: named(client, want), 120, f"a row naming {want}", interval=0.1)
        assert row["pid"] > 1
