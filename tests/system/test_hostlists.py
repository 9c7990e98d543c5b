"""The `code` profile's host lists (docs/policy.md "Host lists"): `@debian`
comes from the image manifest's apt_hosts, `@npm` from the npm registry host
`capsem setup` recorded in setup.json. The service passes both to
capsem-process in vm.json, and the guest's DNS answers follow the rules that
name them. This machine is air-gapped: an allowed name fails upstream
(SERVFAIL), which is fine; the decision is what is checked."""
import json
import os
import sqlite3

import pytest

from conftest import ASSETS, wait_for

NPM_HOST = "registry.npm-mirror.example"


def manifest_apt_hosts():
    with open(os.path.join(ASSETS, "manifest.json")) as f:
        m = json.load(f)
    return m["versions"][m["current"]]["rootfs"]["code"].get("apt_hosts", [])


@pytest.fixture(scope="module")
def npm_recorded(capsem):
    """setup.json with an npm registry host, as `capsem setup` writes it;
    whatever was there before is put back afterwards."""
    path = os.path.join(capsem.home, "setup.json")
    before = open(path).read() if os.path.exists(path) else None
    with open(path, "w") as f:
        json.dump({"version": "test", "completed_at": "2026-01-01T00:00:00Z",
                   "npm_registry_host": NPM_HOST}, f)
    yield NPM_HOST
    if before is None:
        os.unlink(path)
    else:
        with open(path, "w") as f:
            f.write(before)


@pytest.fixture(scope="module")
def cvm(capsem, npm_recorded):
    assert not os.path.exists(os.path.join(capsem.home, "policy.toml")), \
        "a user policy.toml left by another test would change the decisions"
    info = capsem.create(profile_id="code", ram_mb=1024, cpus=2)
    yield info["id"]
    capsem.delete(info["id"])


def dns_rows(capsem, vm, qname):
    db = os.path.join(capsem.home, "run", "sessions", vm, "session.db")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(
            "SELECT * FROM dns_events WHERE qname = ? AND qtype = 'A'", (qname,))]
    finally:
        con.close()


def resolve(capsem, vm, name):
    r = capsem.exec(vm, f"getent ahostsv4 {name}; echo rc=$?", timeout_secs=90)
    assert r["exit_code"] == 0, r
    return wait_for(lambda: dns_rows(capsem, vm, name), 10, f"a dns_events row for {name}",
                    interval=0.2)


def test_vm_json_carries_both_lists(capsem, cvm, npm_recorded):
    apt = manifest_apt_hosts()
    assert "deb.debian.org" in apt, apt
    with open(os.path.join(capsem.home, "run", "sessions", cvm, "vm.json")) as f:
        cfg = json.load(f)
    assert cfg["apt_hosts"] == apt
    assert cfg["npm_hosts"] == [npm_recorded]


def test_apt_host_is_allowed_by_the_debian_rule(capsem, cvm):
    ev = resolve(capsem, cvm, "deb.debian.org")
    assert ev[0]["decision"] == "allowed", ev
    assert ev[0]["matched_rule"] == "profile:debian", ev
    assert ev[0]["rcode"] != "NXDOMAIN", ev  # SERVFAIL here: no way out of this machine


def test_npm_host_is_allowed_by_the_npm_rule(capsem, cvm, npm_recorded):
    ev = resolve(capsem, cvm, npm_recorded)
    assert ev[0]["decision"] == "allowed", ev
    assert ev[0]["matched_rule"] == "profile:npm", ev


def test_other_names_stay_denied(capsem, cvm):
    for name in ("example.org", "security.deb.debian.org"):
        ev = resolve(capsem, cvm, name)
        assert ev[0]["decision"] == "denied", ev
        assert ev[0]["matched_rule"] == "default:default-deny", ev
        assert ev[0]["rcode"] == "NXDOMAIN", ev
