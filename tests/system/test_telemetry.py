"""The read side of per-VM telemetry (network.md section 11, docs/telemetry.md):
GET /vms/{id}/stats and /history, `capsem logs --net/--dns`, `capsem history`,
and the sessions/main.db totals, against a real VM.

Exec rows come from the VM itself. Network, DNS and model rows are written
into the VM's session.db by the test (as capsem-process's proxy would), with
ids far above the writer's, so the reads are checked against known rows."""
import json
import os
import sqlite3
import time
import uuid

import pytest

from conftest import wait_for

T0 = 1795946400000  # 2026-11-29T10:00:00Z


@pytest.fixture(scope="module")
def tele(capsem):
    name = f"tele-{uuid.uuid4().hex[:8]}"
    info = capsem.create(name=name, profile_id="minimal", ram_mb=512)
    yield name, info["id"]
    capsem.delete(info["id"])
    # The first cold boot starts a boot-template build (a hidden VM). Let it
    # finish: a service stopped during the build SIGKILLs it and leaves its
    # instance sockets behind (svc_templates_abort), which the session
    # teardown reports as a leak when this file runs alone.
    instances = os.path.join(capsem.home, "run", "instances")
    wait_for(lambda: not os.listdir(instances), 300, "the boot-template build to finish")


def session_db(capsem, vm_id):
    return os.path.join(capsem.home, "run", "persistent", vm_id, "session.db")


def write_rows(path, sql, rows):
    db = sqlite3.connect(path, timeout=10)
    with db:
        db.executemany(sql, rows)
    db.close()


NET_SQL = ("INSERT INTO net_events(id, timestamp, vm_id, process_name, pid, conn_type, method,"
           " scheme, domain, port, path, status_code, bytes_sent, bytes_received, duration_ms,"
           " decision, matched_rule, reason) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def add_network_rows(path, vm_id):
    write_rows(path, NET_SQL, [
        (1000001, T0 + 1000, vm_id, "curl", 42, "https", "GET", "https", "example.com", 443,
         "/x", 403, 0, 180, 12, "denied", "default:default-deny", "default_deny"),
        (1000002, T0 + 3000, vm_id, "python3", 43, "https", "POST", "https",
         "api.anthropic.com", 443, "/v1/messages", 200, 900, 4000, 850, "allowed",
         "profile:anthropic", None),
    ])
    write_rows(path, "INSERT INTO dns_events(id, timestamp, vm_id, process_name, qname, qtype,"
                     " rcode, decision, matched_rule, reason, cache_hit)"
                     " VALUES(?,?,?,?,?,?,?,?,?,?,?)",
               [(1000001, T0 + 500, vm_id, "curl", "evil.example", "TXT", "NXDOMAIN", "denied",
                 "user:no-odd-names", "policy_block", 0)])
    write_rows(path, "INSERT INTO model_calls(id, timestamp, net_event_id, provider, protocol,"
                     " model, input_tokens, output_tokens, cache_read_tokens, thinking_tokens,"
                     " estimated_cost_usd) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
               [(1000001, T0 + 3000, 1000002, "anthropic", "anthropic-messages", "claude-x",
                 1200, 300, 50, 20, 0.0125)])


def main_db_row(capsem, vm_id):
    db = sqlite3.connect(f"file:{capsem.home}/sessions/main.db?mode=ro", uri=True, timeout=10)
    db.row_factory = sqlite3.Row
    row = db.execute("SELECT * FROM sessions WHERE vm_id = ?", (vm_id,)).fetchone()
    db.close()
    return dict(row) if row else None


TOTALS = {"net_requests": 2, "net_denied": 1, "dns_queries": 1, "dns_denied": 1,
          "model_calls": 1, "input_tokens": 1200, "output_tokens": 300,
          "cache_read_tokens": 50, "thinking_tokens": 20, "tool_calls": 0, "asks": 0}


def totals_of(row):
    return {k: row[k] for k in TOTALS} if row else None


def test_stats_and_history_of_exec_rows(capsem, tele):
    name, vm_id = tele
    capsem.exec(name, "echo one")
    capsem.exec(name, "exit 3")
    s = capsem.api("GET", f"/vms/{name}/stats")
    assert s.status == 200, s
    s = s.json
    assert (s["id"], s["name"], s["status"]) == (vm_id, name, "Running")
    assert s["exec_count"] == 2 and s["net_requests"] == 0 and s["estimated_cost_usd"] == 0
    w = s["writer"]  # flushed by the stats op: nothing left in the queue
    assert w["depth"] == 0 and w["enqueued"]["exec_events"] == 2 and w["written"] >= 2
    assert set(w["dropped"].values()) == {0} and "telemetry_gaps" not in w["dropped"]
    assert isinstance(w["txn_p50_us"], int) and w["txn_p99_us"] >= w["txn_p50_us"]

    h = capsem.api("GET", f"/vms/{name}/history?layer=exec").json
    assert [(c["command"], c["exit_code"]) for c in h["commands"]] == [("exit 3", 3),
                                                                      ("echo one", 0)]
    assert h["commands"][0]["timestamp_ms"] >= h["commands"][1]["timestamp_ms"] > 0
    r = capsem.api("GET", f"/vms/{name}/history?layer=bogus")
    assert r.status == 400 and "unknown layer 'bogus'" in r.json["error"]
    r = capsem.api("GET", f"/vms/{name}/history?since=yesterday")
    assert r.status == 400 and "invalid time" in r.json["error"]
    future = int(time.time() * 1000) + 3600_000
    assert capsem.api("GET", f"/vms/{name}/history?since={future}").json["total"] == 0
    assert capsem.api("GET", "/vms/no-such-vm/stats").status == 404


def test_network_rows_through_api_cli_and_main_db(capsem, tele):
    name, vm_id = tele
    path = session_db(capsem, vm_id)
    add_network_rows(path, vm_id)

    h = capsem.api("GET", f"/vms/{name}/history?layer=net,dns,model").json
    assert [(c["layer"], c["command"]) for c in h["commands"]] == [
        ("model", "anthropic claude-x"),
        ("net", "POST https://api.anthropic.com:443/v1/messages"),
        ("net", "GET https://example.com:443/x"),
        ("dns", "TXT evil.example")]
    denied = h["commands"][2]
    assert (denied["status_code"], denied["decision"], denied["matched_rule"], denied["reason"],
            denied["process_name"], denied["timestamp"]) == (
        403, "denied", "default:default-deny", "default_deny", "curl", "2026-11-29T10:00:01Z")
    h = capsem.api("GET", f"/vms/{name}/history?kind=net&search=ANTHROPIC").json
    assert [c["id"] for c in h["commands"]] == [1000002]

    s = capsem.api("GET", f"/vms/{name}/stats").json
    assert {k: s[k] for k in TOTALS} == TOTALS
    assert (s["net_allowed"], s["net_bytes_received"], s["estimated_cost_usd"]) == (1, 4180, 0.0125)

    p = capsem.cli("logs", name, "--net", check=True)
    lines = p.stdout.decode().splitlines()
    assert lines[0].split() == ["TIME", "PROCESS", "METHOD", "HOST:PORT", "PATH", "STATUS",
                                "DECISION", "RULE", "REASON", "BYTES", "MS"]
    assert lines[1].split() == ["2026-11-29T10:00:01Z", "curl", "GET", "example.com:443", "/x",
                                "403", "denied", "default:default-deny", "default_deny",
                                "0B/180B", "12"]
    assert lines[2].split()[1:4] == ["python3", "POST", "api.anthropic.com:443"]
    p = capsem.cli("logs", name, "--dns", "--json", check=True)
    assert [c["qname"] for c in json.loads(p.stdout)["commands"]] == ["evil.example"]
    p = capsem.cli("logs", name, "--net", "--serial")
    assert p.returncode == 2
    p = capsem.cli("history", name, check=True)
    text = p.stdout.decode()
    assert "net: GET https://example.com:443/x [denied default:default-deny]" in text
    assert "dns: TXT evil.example [denied user:no-odd-names]" in text
    p = capsem.cli("history", name, "--layer", "exec", check=True)
    assert "net:" not in p.stdout.decode() and "exit 3" in p.stdout.decode()

    # main.db: refreshed every 10 s while the VM runs, and once more at stop.
    wait_for(lambda: totals_of(main_db_row(capsem, vm_id)) == TOTALS, 30, "main.db totals")
    assert capsem.api("POST", f"/vms/{name}/stop").status == 200
    s = capsem.api("GET", f"/vms/{name}/stats").json
    assert s["status"] == "Stopped" and s["writer"] is None and s["net_requests"] == 2
    write_rows(path, NET_SQL, [(1000003, T0 + 9000, vm_id, "curl", 44, "https", "GET", "https",
                                "example.org", 443, "/", 403, 0, 0, 3, "denied",
                                "default:default-deny", "default_deny")])
    # Deleting reads the file one last time (moved aside, then removed).
    assert capsem.delete(name).status == 200
    row = wait_for(lambda: (r := main_db_row(capsem, vm_id)) and r["net_requests"] == 3 and r,
                   20, "main.db totals after delete")
    assert (row["status"], row["net_denied"]) == ("Deleted", 2)
    sessions = os.path.join(capsem.home, "run", "sessions")
    wait_for(lambda: not [f for f in os.listdir(sessions) if f.startswith(".final-")], 10,
             "moved-aside session.db files to be removed")
