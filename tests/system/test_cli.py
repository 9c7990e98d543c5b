"""The capsem CLI against the real service and VMs."""
import json
import re

import pytest


@pytest.mark.fast
def test_run_prints_output_and_passes_exit_code(capsem):
    p = capsem.cli("run", "--profile", "minimal", "--ram", "512M", "--",
                   "echo hello; echo oops >&2; exit 5")
    assert p.stdout == b"hello\n"
    assert p.stderr == b"oops\n"
    assert p.returncode == 5
    assert capsem.vms() == []  # the run VM is gone


def test_run_timeout_note(capsem):
    p = capsem.cli("run", "--profile", "minimal", "--ram", "512M", "--timeout", "1", "sleep 20")
    assert p.returncode == 124
    assert b"capsem: command timed out after 1 s" in p.stderr


@pytest.mark.fast
def test_create_exec_list_info_delete(capsem):
    p = capsem.cli("create", "--profile", "minimal", "--ram", "512M", "-e", "GREETING=hi there",
                   check=True)
    vm_id = p.stdout.decode().strip()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", vm_id)
    name = capsem.api("GET", f"/vms/{vm_id}/info").json["name"]
    assert re.fullmatch(r"minimal-\d+", name)

    p = capsem.cli("exec", name, "--", "echo", "$GREETING;", "exit", "4")
    assert p.stdout == b"hi there\n" and p.returncode == 4

    p = capsem.cli("list", check=True)
    lines = p.stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "TYPE", "CPUS", "RAM", "UPTIME"]
    row = [l for l in lines if l.startswith(vm_id)]
    assert row and row[0].split()[1:6] == [name, "Running", "ephemeral", "2", "512M"]
    assert capsem.cli("list", "-q", check=True).stdout.decode().split() == [vm_id]
    listed = json.loads(capsem.cli("list", "--json", check=True).stdout)
    assert [s["id"] for s in listed["sandboxes"]] == [vm_id]

    info = capsem.cli("info", name, check=True).stdout.decode()
    assert f"ID: {vm_id}" in info and "Status: Running" in info and "Profile: minimal" in info
    assert json.loads(capsem.cli("info", vm_id, "--json", check=True).stdout)["accel"] in ("kvm", "tcg")

    p = capsem.cli("delete", name, check=True)
    assert p.stdout.decode().strip() == name
    assert capsem.vms() == []


@pytest.mark.fast
def test_cli_errors(capsem):
    p = capsem.cli("exec", "no-such-vm", "true")
    assert p.returncode == 1 and p.stderr.decode().strip() == "Error: VM not found: no-such-vm"
    p = capsem.cli("frobnicate")
    assert p.returncode == 2
    p = capsem.cli("create", "--cpu", "99", "--profile", "minimal")
    assert p.returncode == 1 and "cpus must be between 1 and 8" in p.stderr.decode()
    p = capsem.cli("create", "--profile", "nope")
    assert p.returncode == 1 and "unknown profile: nope" in p.stderr.decode()
    p = capsem.cli("version", check=True)
    assert p.stdout.decode().splitlines() == ["capsem 0.1.0", "capsem-service 0.1.0"]
