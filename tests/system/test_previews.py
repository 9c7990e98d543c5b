"""Body previews in net_events and redacted previews (network.md sections 10
and 11) from inside a real guest: with network.log_bodies on, textual
identity-encoded bodies keep their first body_preview_bytes per direction;
binary bodies and log_bodies off keep none; host-held secrets and the VM's
placeholders never reach a preview.

upstream.py stands in for the world; the user policy points test names at it
with upstream overrides, as in test_net.py."""
import json
import os
import textwrap
import time

import pytest

from conftest import wait_for
from guestdb import rows, sh, wait_rows, write_credentials
from upstream import Upstream

NAMES = ("allowed.test", "api.anthropic.com")
SECRET = "sk-ant-preview-0123456789abcdefghijk"
PREVIEW = 64
# longer than the preview, so the cut shows
JSON_BODY = '{"marker": "preview-json", "pad": "' + "p" * 80 + '"}'


def policy_text(port, ca, log_bodies=True):
    overrides = ",\n".join(
        f'  {{ target = "{n}:443", dial = "127.0.0.1:{port}", ca_file = "{ca}" }}' for n in NAMES)
    return textwrap.dedent("""\
        schema = 1
        rule = [
          {{ id = "previews-allowed", action = "allow", host = "allowed.test" }},
        ]
        [network]
        log_bodies = {log_bodies}
        body_preview_bytes = {preview}
        upstream_override = [
        {overrides}
        ]
        """).format(log_bodies="true" if log_bodies else "false", preview=PREVIEW,
                    overrides=overrides)


@pytest.fixture(scope="module")
def world(capsem, tmp_path_factory):
    up = Upstream(str(tmp_path_factory.mktemp("upstream")), names=NAMES)
    path = os.path.join(capsem.home, "policy.toml")
    with open(path, "w") as f:
        f.write(policy_text(up.port, up.ca))
    up.policy_path = path
    creds = write_credentials(capsem.home, anthropic=SECRET)
    yield up
    os.unlink(path)
    os.unlink(creds)
    up.close()


@pytest.fixture(scope="module")
def gvm(capsem, world):
    info = capsem.create(profile_id="code", ram_mb=1024, cpus=2)
    yield info["id"]
    capsem.delete(info["id"])


def last_id(capsem, vm, table="net_events"):
    got = rows(capsem, vm, f"SELECT MAX(id) AS m FROM {table}")
    return got[0]["m"] or 0


def post_echo(capsem, vm, ctype, body=JSON_BODY):
    sh(capsem, vm, f"printf '%s' '{body}' > /tmp/preview-body")
    r = sh(capsem, vm, f"curl -sS -H 'content-type: {ctype}' --data-binary @/tmp/preview-body "
                       "https://allowed.test/echo")
    assert r["exit_code"] == 0, r
    return r["stdout"]


def echo_row(capsem, vm, after, previews=True):
    """The net_events row of the first /echo after row `after`; with
    previews, waits until its preview update has landed too."""
    cond = " AND response_body_preview IS NOT NULL" if previews else ""
    return wait_rows(capsem, vm, "SELECT * FROM net_events WHERE path = '/echo' AND id > ? "
                                 "AND decision = 'allowed'" + cond + " ORDER BY id", (after,),
                     what="the /echo row")[0]


@pytest.mark.fast
def test_json_bodies_get_both_previews_cut_at_the_configured_size(capsem, gvm, world):
    before = last_id(capsem, gvm)
    out = post_echo(capsem, gvm, "application/json; charset=utf-8")
    assert json.loads(out)["body"] == JSON_BODY
    row = echo_row(capsem, gvm, before)
    assert row["request_body_preview"] == JSON_BODY.encode()[:PREVIEW]
    assert len(row["response_body_preview"]) == PREVIEW
    assert row["response_body_preview"] == out.encode()[:PREVIEW]
    assert row["bytes_sent"] == len(JSON_BODY)  # the preview, not the body, is cut


def test_text_response_without_request_body(capsem, gvm, world):
    before = last_id(capsem, gvm)
    r = sh(capsem, gvm, "curl -sS https://allowed.test/hello")
    assert r["exit_code"] == 0, r
    row = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE path = '/hello' AND id > ? "
                                 "AND response_body_preview IS NOT NULL", (before,))[0]
    assert row["response_body_preview"] == b"hello from allowed.test\n"
    assert row["request_body_preview"] is None


def test_binary_bodies_get_no_preview(capsem, gvm, world):
    before = last_id(capsem, gvm)
    out = post_echo(capsem, gvm, "application/octet-stream")
    row = echo_row(capsem, gvm, before)  # the JSON answer still has one
    assert row["request_body_preview"] is None
    assert row["response_body_preview"] == out.encode()[:PREVIEW]
    # A response without a textual Content-Type (pseudo-random bytes).
    before = last_id(capsem, gvm)
    r = sh(capsem, gvm, "curl -sS -o /dev/null -w '%{http_code}' 'https://allowed.test/big?mib=1'")
    assert r["stdout"] == "200", r
    big = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE path = '/big' AND id > ?",
                    (before,))[0]
    time.sleep(1)  # an update, had there been one, lands with the next batch
    big = rows(capsem, gvm, "SELECT * FROM net_events WHERE id = ?", (big["id"],))[0]
    assert big["bytes_received"] == 1 << 20
    assert big["request_body_preview"] is None and big["response_body_preview"] is None


@pytest.mark.fast
def test_placeholder_in_an_ai_request_is_redacted_in_every_preview(capsem, gvm, world):
    ph = sh(capsem, gvm, "echo $ANTHROPIC_API_KEY")["stdout"].strip()
    assert ph.startswith("capsem-placeholder-anthropic-"), ph
    before_net = last_id(capsem, gvm)
    before_model = last_id(capsem, gvm, "model_calls")
    # system first: the 64-byte request preview cuts through the placeholder
    body = ('{\\"system\\": \\"key $ANTHROPIC_API_KEY end\\", \\"model\\": '
            '\\"claude-sonnet-4-5-20250929\\", \\"max_tokens\\": 16, '
            '\\"messages\\": [{\\"role\\": \\"user\\", \\"content\\": \\"hi\\"}]}')
    r = sh(capsem, gvm, "curl -sS -w '\\n%{http_code}' -H 'content-type: application/json' "
                        "-H 'anthropic-version: 2023-06-01' -H 'x-test-id: previews1' "
                        f"-d \"{body}\" https://api.anthropic.com/v1/messages")
    assert r["exit_code"] == 0 and r["stdout"].endswith("\n200"), r
    seen = [e for e in world.log if e["path"] == "/v1/messages"]
    assert seen and ph.encode() in seen[-1]["body"]  # bodies are forwarded unchanged
    call = wait_rows(capsem, gvm, "SELECT * FROM model_calls WHERE id > ? AND provider = "
                                  "'anthropic'", (before_model,), what="the model call")[0]
    system = call["system_prompt_preview"]
    assert system == "key [secret:anthropic] end", system
    net = wait_rows(capsem, gvm, "SELECT * FROM net_events WHERE id > ? AND path = "
                                 "'/v1/messages' AND request_body_preview IS NOT NULL",
                    (before_net,))[0]
    req = net["request_body_preview"]
    assert req.startswith(b'{"system": "key ') and len(req) <= PREVIEW, req
    # the placeholder crosses byte 64: read whole, so its provider is named
    assert b"[secret:anthropic]" in req, req
    for leak in (ph.encode(), ph[:24].encode(), SECRET.encode()):
        assert leak not in req
        assert leak not in (net["response_body_preview"] or b"")
    dump = json.dumps(rows(capsem, gvm, "SELECT * FROM model_calls WHERE id = ?",
                           (call["id"],)), default=str)
    assert ph not in dump and SECRET not in dump


def test_log_bodies_off_keeps_no_previews(capsem, gvm, world):
    with open(world.policy_path, "w") as f:
        f.write(policy_text(world.port, world.ca, log_bodies=False))

    def preview_gone():
        before = last_id(capsem, gvm)
        post_echo(capsem, gvm, "application/json")
        row = echo_row(capsem, gvm, before, previews=False)
        time.sleep(0.5)  # let a preview update, if any, land
        row = rows(capsem, gvm, "SELECT * FROM net_events WHERE id = ?", (row["id"],))[0]
        return row if row["request_body_preview"] is None else None
    try:
        row = wait_for(preview_gone, 30, "log_bodies = false to apply")
        assert row["response_body_preview"] is None
        before = last_id(capsem, gvm)
        post_echo(capsem, gvm, "text/plain")
        again = echo_row(capsem, gvm, before, previews=False)
        time.sleep(1)
        again = rows(capsem, gvm, "SELECT * FROM net_events WHERE id = ?", (again["id"],))[0]
        assert again["request_body_preview"] is None and again["response_body_preview"] is None
    finally:
        with open(world.policy_path, "w") as f:
            f.write(policy_text(world.port, world.ca))
