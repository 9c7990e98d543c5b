"""File transfer through the guest agent, and workspace confinement."""
import base64
import hashlib
import os

import pytest


@pytest.mark.fast
def test_binary_round_trip_1mib(capsem, vm):
    data = os.urandom(1024 * 1024)
    r = capsem.api("POST", f"/vms/{vm}/files/content?path=/root/dir/blob.bin", raw=data)
    assert r.status == 200, r
    assert r.json == {"success": True, "size": len(data)}
    got = capsem.api("GET", f"/vms/{vm}/files/content?path=dir/blob.bin")
    assert got.status == 200
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert 'filename="blob.bin"' in got.headers["Content-Disposition"]
    assert got.body == data
    inside = capsem.exec(vm, "sha256sum /root/dir/blob.bin | cut -d' ' -f1")
    assert inside["stdout"].strip() == hashlib.sha256(data).hexdigest()


@pytest.mark.fast
def test_paths_escaping_the_workspace_are_refused(capsem, vm):
    r = capsem.api("POST", f"/vms/{vm}/files/content?path=/etc/evil", raw=b"x")
    assert r.status == 403 and r.json == {"error": "path escapes the workspace"}
    r = capsem.api("GET", f"/vms/{vm}/files/content?path=../etc/passwd")
    assert r.status == 400
    capsem.exec(vm, "ln -sfn /etc /root/etclink")
    r = capsem.api("GET", f"/vms/{vm}/files/content?path=/root/etclink/passwd")
    assert r.status == 403 and r.json == {"error": "path escapes the workspace"}
    r = capsem.api("POST", f"/vms/{vm}/files/content?path=/root/etclink/evil", raw=b"x")
    assert r.status == 403
    assert capsem.exec(vm, "test -e /etc/evil; echo $?")["stdout"] == "1\n"


@pytest.mark.fast
def test_read_write_any_guest_path(capsem, vm):
    payload = bytes(range(256)) * 4
    r = capsem.api("POST", f"/vms/{vm}/files/write",
                   {"path": "/tmp/bin.dat", "content": base64.b64encode(payload).decode(),
                    "encoding": "base64", "mode": 0o600})
    assert r.status == 200 and r.json["size"] == len(payload)
    assert capsem.exec(vm, "stat -c %a /tmp/bin.dat")["stdout"] == "600\n"
    r = capsem.api("POST", f"/vms/{vm}/files/read", {"path": "/tmp/bin.dat", "encoding": "base64"})
    assert base64.b64decode(r.json["content"]) == payload
    r = capsem.api("POST", f"/vms/{vm}/files/read", {"path": "/tmp/bin.dat"})
    assert r.status == 400 and "UTF-8" in r.json["error"]
    r = capsem.api("POST", f"/vms/{vm}/files/write", {"path": "notes.txt", "content": "héllo\n"})
    assert r.status == 200
    r = capsem.api("POST", f"/vms/{vm}/files/read", {"path": "/root/notes.txt"})
    assert r.json == {"content": "héllo\n", "encoding": "utf8"}
    r = capsem.api("POST", f"/vms/{vm}/files/read", {"path": "/no/such/file"})
    assert r.status == 404


def test_list_workspace(capsem, vm):
    capsem.exec(vm, "mkdir -p /root/tree/sub && echo hi > /root/tree/sub/f.txt && echo x > /root/tree/top")
    r = capsem.api("GET", f"/vms/{vm}/files/list?path=/root/tree&depth=2")
    assert r.status == 200
    entries = {e["name"]: e for e in r.json["entries"]}
    assert entries["top"]["type"] == "file" and entries["top"]["size"] == 2
    assert entries["sub"]["type"] == "dir"
    assert [c["name"] for c in entries["sub"]["children"]] == ["f.txt"]
    assert entries["sub"]["children"][0]["path"] == "/root/tree/sub/f.txt"
