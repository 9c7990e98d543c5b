"""The later capsem CLI commands against the real service and real VMs:
suspend/resume/stop/restart/persist, fork and images, cp, logs (and --follow),
history, purge, doctor (and Ctrl-C), setup with first use, service
start/stop/status."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import ASSETS, BIN_DIR, our_processes, sock_path, wait_for

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def out(p):
    return p.stdout.decode()


def err(p):
    return p.stderr.decode()


def status_of(capsem, ref):
    r = capsem.api("GET", f"/vms/{ref}/info")
    return r.json["status"] if r.status == 200 else None


def test_persistent_vm_suspend_resume_stop_restart(capsem):
    p = capsem.cli("create", "-n", "life", "--profile", "minimal", "--ram", "512M", check=True)
    vm_id = out(p).strip()
    assert re.fullmatch(UUID, vm_id)
    capsem.cli("exec", "life", "echo kept > /root/note.txt; echo $((6*7)) > /tmp/mem", check=True)

    p = capsem.cli("suspend", vm_id, check=True)
    assert out(p) == "life\n"
    assert status_of(capsem, "life") == "Suspended"
    row = [l for l in out(capsem.cli("list", check=True)).splitlines() if l.startswith(vm_id)]
    assert row[0].split()[1:4] == ["life", "Suspended", "persistent"]

    p = capsem.cli("resume", "life", check=True)
    assert out(p) == vm_id + "\n"
    p = capsem.cli("exec", "life", "cat /root/note.txt /tmp/mem", check=True)
    assert out(p) == "kept\n42\n"  # warm restore keeps memory (tmpfs) too

    p = capsem.cli("stop", "life", check=True)
    assert out(p) == "life\n"
    assert status_of(capsem, "life") == "Stopped"
    p = capsem.cli("stop", "life")
    assert p.returncode == 0 and out(p) == "life\n"  # stopping a Stopped VM does nothing
    p = capsem.cli("suspend", "life")
    assert p.returncode == 1 and err(p).startswith("Error: cannot ")

    p = capsem.cli("restart", "life", check=True)
    assert out(p) == vm_id + "\n"
    assert status_of(capsem, "life") == "Running"
    p = capsem.cli("exec", "life", "cat /root/note.txt", check=True)
    assert out(p) == "kept\n"  # cold boot keeps the workspace
    p = capsem.cli("restart", "life", check=True)
    assert out(p) == vm_id + "\n" and status_of(capsem, "life") == "Running"

    p = capsem.cli("history", "life", check=True)
    lines = out(p).splitlines()
    assert lines[0].split() == ["TIME", "EXIT", "DURATION", "COMMAND"]
    col = lines[0].index("COMMAND")
    cmds = [l[col:] for l in lines[1:]]
    assert cmds == ["echo kept > /root/note.txt; echo $((6*7)) > /tmp/mem",
                    "cat /root/note.txt /tmp/mem", "cat /root/note.txt"]
    j = json.loads(out(capsem.cli("history", "life", "--search", "mem", "--json", check=True)))
    assert [c["command"] for c in j["commands"]] == ["cat /root/note.txt /tmp/mem",
                                                     "echo kept > /root/note.txt; echo $((6*7)) > /tmp/mem"]
    p = capsem.cli("history", "life", "--tail", "1", check=True)
    assert out(p).splitlines()[1:] and out(p).splitlines()[1].endswith("cat /root/note.txt")

    p = capsem.cli("logs", "life", check=True)
    text = out(p)
    assert text.startswith("--- process.log (life) ---\n")
    assert "\n--- serial.log (life) ---\n" in text
    p = capsem.cli("logs", "life", "--serial", "--tail", "5", check=True)
    assert 0 < len(out(p).splitlines()) <= 5 and "---" not in out(p).splitlines()[0]

    p = capsem.cli("delete", "life", check=True)
    assert out(p) == "life\n"


@pytest.mark.fast
def test_restart_refuses_ephemeral_and_persist(capsem):
    vm_id = out(capsem.cli("create", "--profile", "minimal", "--ram", "512M", check=True)).strip()
    p = capsem.cli("restart", vm_id)
    assert p.returncode == 1 and err(p) == "Error: only persistent VMs can be restarted\n"
    p = capsem.cli("suspend", vm_id)
    assert p.returncode == 1 and err(p) == \
        "Error: ephemeral VMs cannot be suspended (persist first)\n"
    p = capsem.cli("persist", vm_id, "kept-vm", check=True)
    assert out(p) == "kept-vm\n"
    info = capsem.api("GET", "/vms/kept-vm/info").json
    assert info["id"] == vm_id and info["persistent"] is True
    p = capsem.cli("persist", "kept-vm", "again")
    assert p.returncode == 1 and err(p).startswith("Error: ")
    capsem.cli("delete", vm_id, check=True)


def test_fork_and_images(capsem):
    capsem.cli("create", "-n", "forksrc", "--profile", "minimal", "--ram", "512M", check=True)
    capsem.cli("exec", "forksrc", "echo from-image > /root/seed.txt", check=True)
    p = capsem.cli("fork", "forksrc", "seeded", "-d", "has seed.txt", check=True)
    assert out(p) == "seeded\n"
    p = capsem.cli("fork", "forksrc", "seeded")
    assert p.returncode == 1 and err(p).startswith("Error: ")

    lines = out(capsem.cli("image", "list", check=True)).splitlines()
    assert lines[0].split() == ["NAME", "BASE", "PROFILE", "SIZE", "CREATED", "DESCRIPTION"]
    assert lines[1].startswith("seeded  ") and lines[1].endswith("  has seed.txt")
    assert lines[1].split()[2] == "minimal"
    assert out(capsem.cli("image", "ls", "-q", check=True)) == "seeded\n"
    listed = json.loads(out(capsem.cli("image", "list", "--json", check=True)))
    assert [i["name"] for i in listed["images"]] == ["seeded"]

    child = out(capsem.cli("create", "--image", "seeded", "--ram", "512M", check=True)).strip()
    assert out(capsem.cli("exec", child, "cat /root/seed.txt", check=True)) == "from-image\n"
    child_name = capsem.api("GET", f"/vms/{child}/info").json["name"]
    info = out(capsem.cli("image", "info", "seeded", check=True))
    assert "Name: seeded\n" in info and "Forked from: forksrc\n" in info
    assert f"In use by: {child_name}\n" in info
    p = capsem.cli("image", "rm", "seeded")
    assert p.returncode == 1 and err(p) == f"Error: image in use by: {child_name}\n"
    capsem.cli("delete", child, "forksrc", check=True)
    p = capsem.cli("image", "delete", "seeded", "nope")
    assert p.returncode == 1 and out(p) == "seeded\n" and err(p).startswith("Error: ")
    assert out(capsem.cli("image", "list", check=True)) == "No images.\n"


@pytest.mark.fast
def test_cp_round_trip(capsem, tmp_path):
    capsem.cli("create", "-n", "cpvm", "--profile", "minimal", "--ram", "512M", check=True)
    data = bytes(range(256)) * 64 + b"\0tail"
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    p = capsem.cli("cp", str(src), "cpvm:in/", check=True)
    assert err(p) == f"Copied {len(data)} bytes: {src} -> cpvm:in/blob.bin\n"
    p = capsem.cli("exec", "cpvm", "sha256sum /root/in/blob.bin", check=True)
    assert out(p).split()[0] == hashlib.sha256(data).hexdigest()
    p = capsem.cli("cp", "cpvm:/root/in/blob.bin", "-", check=True)
    assert p.stdout == data
    p = capsem.cli("cp", "cpvm:in/blob.bin", str(tmp_path), check=True)
    assert (tmp_path / "blob.bin").read_bytes() == data
    p = capsem.cli("cp", "-", "cpvm:piped.txt", input=b"piped\n", check=True)
    assert out(capsem.cli("exec", "cpvm", "cat piped.txt", check=True)) == "piped\n"
    p = capsem.cli("cp", "cpvm:/etc/passwd", str(tmp_path))
    assert p.returncode == 1 and err(p) == "Error: path escapes the workspace\n"
    p = capsem.cli("cp", "cpvm:missing.txt", str(tmp_path))
    assert p.returncode == 1 and err(p).startswith("Error: ")
    # A Stopped VM's workspace is still readable and writable from the host.
    capsem.cli("stop", "cpvm", check=True)
    p = capsem.cli("cp", "cpvm:piped.txt", "-", check=True)
    assert p.stdout == b"piped\n"
    capsem.cli("delete", "cpvm", check=True)


def test_logs_follow(capsem):
    vm_id = out(capsem.cli("create", "-n", "follow", "--profile", "minimal", "--ram", "512M",
                           check=True)).strip()
    capsem.cli("exec", "follow", "true", check=True)  # booted
    p = subprocess.Popen([os.path.join(BIN_DIR, "capsem"), "logs", "follow", "--follow"],
                         env=capsem.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)
        capsem.cli("stop", "follow", check=True)  # the guest's shutdown lands in the logs
        capsem.cli("delete", vm_id, check=True)
        stdout, stderr = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    assert stdout.decode().startswith("--- process.log (follow) ---\n")
    assert stderr.decode() == "capsem: follow is gone\n"


def test_purge(capsem):
    for _ in range(2):
        capsem.cli("create", "--profile", "minimal", "--ram", "512M", check=True)
    capsem.cli("create", "-n", "purge-keep", "--profile", "minimal", "--ram", "512M", check=True)
    p = capsem.cli("purge", check=True)
    assert out(p) == "Purged 2 VMs (2 ephemeral, 0 persistent).\n"
    p = capsem.cli("purge", "--all", input=b"n\n")
    assert p.returncode == 0 and out(p) == ""
    assert err(p) == "Delete 1 VM (1 persistent)? [y/N] \nAborted.\n"
    assert [v["name"] for v in capsem.vms()] == ["purge-keep"]
    p = capsem.cli("purge", "--all", "-y", check=True)
    assert out(p) == "Purged 1 VM (0 ephemeral, 1 persistent).\n"
    assert capsem.vms() == []


def doctor_checks(text):
    return [l.split(":")[0] for l in text.splitlines()]


def test_doctor(capsem):
    p = capsem.cli("doctor", "--quick")
    assert doctor_checks(out(p)) == ["[ok] kvm" if "[ok] kvm" in out(p) else "[warn] kvm",
                                     "[ok] qemu", "[ok] assets", "[ok] service",
                                     "[warn] gateway", "[ok] disk", "RESULT"], out(p)
    assert out(p).endswith("RESULT: PASS\n") and p.returncode == 0
    accel = capsem.api("GET", "/status").json["accel"]
    assert ("[ok] kvm" in out(p)) == (accel == "kvm")

    p = capsem.cli("doctor", timeout=600)
    text = out(p)
    assert p.returncode == 0, text + err(p)
    assert re.search(r"^\[ok\] vm: \S+ \(1 CPU, 1024M\) booted and ran `echo ok` in ", text, re.M)
    assert f"[ok] vm: guest arch {os.uname().machine}, as the host\n" in text
    assert "[ok] vm: /root is writable\n" in text
    assert re.search(r"^\[ok\] vm: network interfaces: lo(, dummy0)? \(", text, re.M)
    assert text.endswith("RESULT: PASS\n")
    assert capsem.vms() == []


def test_doctor_interrupted_deletes_its_vm(capsem):
    p = subprocess.Popen([os.path.join(BIN_DIR, "capsem"), "doctor"], env=capsem.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: capsem.vms(), 120, "the doctor's VM")
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, (stdout, stderr)
    assert stderr.decode().endswith("Interrupted; the test VM was deleted.\n")
    wait_for(lambda: capsem.vms() == [], 30, "no VMs left")


@pytest.mark.fast
def test_setup_first_use_and_service_commands(capsem):
    """A fresh home: first use installs the assets and starts the service;
    service stop/start/status manage it by its pid file."""
    home = tempfile.mkdtemp(prefix="capsem-cli-home-")
    env = dict(capsem.env, CAPSEM_HOME=home, CAPSEM_ASSETS_SOURCE=ASSETS,
               XDG_CONFIG_HOME=os.path.join(home, "xdg"),
               XDG_RUNTIME_DIR=os.path.join(home, "no-user-systemd"))
    env.pop("CAPSEM_UDS_PATH", None)
    cli = os.path.join(BIN_DIR, "capsem")

    def run(*args, **kw):
        return subprocess.run([cli, *args], env=env, capture_output=True, timeout=120, **kw)
    try:
        p = run("list")
        assert p.returncode == 0, err(p)
        assert out(p) == "No VMs.\n"
        assert err(p).startswith("capsem: first use: running capsem setup --non-interactive\n")
        assert "[ok] assets: installed v" in err(p)
        assert os.path.exists(os.path.join(home, "assets", "manifest.json"))
        assert os.path.exists(os.path.join(home, "user.toml"))
        p = run("setup", "--non-interactive")
        assert p.returncode == 0 and "already installed" in out(p), out(p) + err(p)
        assert out(p).splitlines()[-1].startswith(f"Setup complete: {home} (assets v")

        p = run("service", "status")
        status = out(p).splitlines()
        assert p.returncode == 0, out(p)
        assert status[0] == "Installed: no"
        assert re.fullmatch(r"Running: yes \(pid \d+\)", status[1])
        assert status[2] == "Version: 0.1.0"
        assert status[3] == "Socket: " + os.path.join(home, "run", "service.sock")
        assert status[4] == "Gateway: not part of this version"
        assert status[5] in ("Accel: kvm", "Accel: tcg")
        assert status[6] == "VMs: 0 (0 running, 0 stopped, 0 suspended, 0 defunct)"
        pid = int(re.search(r"\d+", status[1]).group())

        p = run("service", "stop")
        assert p.returncode == 0 and out(p) == "Service stopped.\n", err(p)
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"
        p = run("list")
        assert p.returncode == 1 and err(p) == \
            "Error: service is stopped; run: capsem service start\n"
        p = run("service", "status")
        assert p.returncode == 1 and "Running: no\n" in out(p)
        p = run("service", "start")
        assert p.returncode == 0 and out(p) == "Service started.\n", err(p)
        assert run("service", "status").returncode == 0
        p = run("service", "install")
        assert p.returncode == 1 and "refuses to run with CAPSEM_HOME set" in err(p)
        p = run("service", "stop")
        assert p.returncode == 0, err(p)
        sock = sock_path(os.path.join(home, "run", "service.sock"))
        assert not os.path.exists(sock)
    finally:
        subprocess.run([cli, "service", "stop"], env=env, capture_output=True, timeout=60)
        deadline = time.monotonic() + 15
        while our_processes(home) and time.monotonic() < deadline:
            time.sleep(0.1)
        leaked = our_processes(home)
        shutil.rmtree(home, ignore_errors=True)
        assert not leaked, leaked
