"""VM lifecycle edges: crashes, isolation of the guest, the code profile."""
import os
import signal
import time

import psutil
import pytest

from conftest import wait_for


@pytest.mark.fast
def test_no_network_device_but_lo_and_dummy0(capsem, vm):
    # network.md 2: no NIC; dummy0 only carries the default route (a dummy
    # device drops what it is given), lo carries the relays.
    r = capsem.exec(vm, "ls /sys/class/net; cat /sys/class/net/dummy0/type; "
                        "readlink /sys/class/net/dummy0/device || echo no-device")
    assert r["stdout"].split() == ["dummy0", "lo", "1", "no-device"]


@pytest.mark.fast
def test_guest_binaries_read_only_and_mounts(capsem, vm):
    r = capsem.exec(vm, "stat -c %a /run/capsem-agent; grep -c ' / overlay ' /proc/mounts;"
                        " grep ' /root ' /proc/mounts | cut -d' ' -f3; touch /usr/bin/x && echo rw")
    assert r["stdout"].split() == ["555", "1", "ext4", "rw"]


def test_code_profile_has_python_git_node(capsem):
    p = capsem.cli("run", "--", "python3 -c 'print(6*7)'; git --version; node -e 'console.log(1+1)';"
                   " python3 -m venv /tmp/venv && echo venv-ok")
    out = p.stdout.decode().splitlines()
    assert p.returncode == 0, p.stderr
    assert out[0] == "42"
    assert out[1].startswith("git version 2.")
    assert out[2] == "2"
    assert out[3] == "venv-ok"


def qemu_of(vm_pid):
    return [c for c in psutil.Process(vm_pid).children() if "qemu-system" in " ".join(c.cmdline())]


def test_crashed_qemu_is_an_error_not_a_hang(capsem):
    info = capsem.create(profile_id="minimal", ram_mb=512)
    vm_id = info["id"]
    capsem.exec(vm_id, "true")
    pid = capsem.api("GET", f"/vms/{vm_id}/info").json["pid"]
    qemu = qemu_of(pid)
    assert len(qemu) == 1
    qemu[0].send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    r = capsem.api("POST", f"/vms/{vm_id}/exec", {"command": "echo too late"}, timeout=60)
    assert r.status in (404, 409, 500), r
    assert time.monotonic() - t0 < 60
    wait_for(lambda: capsem.api("GET", f"/vms/{vm_id}/info").status == 404, 30,
             "the crashed ephemeral VM to be removed")
    failed = [d for d in os.listdir(os.path.join(capsem.home, "run", "sessions"))
              if d.startswith(vm_id + "-failed-")]
    assert len(failed) == 1
    log = open(os.path.join(capsem.home, "run", "sessions", failed[0], "process.log")).read()
    assert "crashed" in log or "QEMU exited" in log


def test_killed_vm_process_takes_qemu_with_it(capsem):
    info = capsem.create(profile_id="minimal", ram_mb=512)
    capsem.exec(info["id"], "true")
    pid = capsem.api("GET", f"/vms/{info['id']}/info").json["pid"]
    qemu = qemu_of(pid)[0]
    os.kill(pid, signal.SIGKILL)
    qemu.wait(timeout=30)
    wait_for(lambda: capsem.api("GET", f"/vms/{info['id']}/info").status == 404, 30,
             "the VM to be removed")


def test_boot_refuses_assets_that_do_not_match(capsem, tmp_path):
    """Corrupt a copy of the minimal rootfs in a second home: create must fail with 412."""
    import json
    import shutil
    import subprocess
    from conftest import BIN_DIR, Capsem, install_assets
    home = str(tmp_path / "h")
    os.makedirs(home, mode=0o700)
    install_assets(home)
    manifest = json.load(open(os.path.join(home, "assets", "manifest.json")))
    ver = manifest["current"]
    rootfs = os.path.join(home, "assets", "v" + ver, "rootfs-minimal.erofs")
    data = open(rootfs, "rb").read()
    os.unlink(rootfs)  # it is a hard link to the real asset: replace, do not modify
    with open(rootfs, "wb") as f:
        f.write(data[:-1] + bytes([data[-1] ^ 1]))
    c = Capsem(home)
    svc = subprocess.Popen([os.path.join(BIN_DIR, "capsem-service")], env=c.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(c.sock), 30, "second service")
        wait_for(lambda: c.api("GET", "/version").status == 200, 30, "second service")
        r = c.api("POST", "/vms/create", {"profile_id": "minimal"})
        assert r.status == 412
        assert "does not match the manifest" in r.json["error"]
    finally:
        svc.terminate()
        svc.wait(30)
        shutil.rmtree(home, ignore_errors=True)
