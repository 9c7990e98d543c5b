"""capsem-service as a daemon: permissions, singleton, stale sockets,
auto-start by the CLI, re-adoption of running VMs, guest poweroff."""
import os
import signal
import stat
import subprocess
import time

import pytest

from conftest import BIN_DIR, Capsem, install_assets, sock_path, wait_for


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def home(tmp_path):
    h = str(tmp_path / "home")
    os.makedirs(h, mode=0o700)
    install_assets(h)
    c = Capsem(h)
    yield c
    pidfile = os.path.join(h, "run", "service.pid")
    if os.path.exists(pidfile):
        pid = int(open(pidfile).read())
        try:
            for vm in c.vms():
                c.delete(vm["id"])
            wait_for(lambda: not c.vms(), 30, "VMs to go")
        except OSError:
            pass
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        wait_for(lambda: not os.path.exists(pidfile), 30, "the service to stop")


def start_service(c):
    p = subprocess.Popen([os.path.join(BIN_DIR, "capsem-service")], env=c.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    wait_for(lambda: os.path.exists(c.sock) and c.api("GET", "/version").status == 200, 30,
             "the service")
    return p


@pytest.mark.fast
def test_socket_and_directory_permissions(capsem, vm):
    run = os.path.join(capsem.home, "run")
    assert mode(run) == 0o700
    assert mode(capsem.sock) == 0o600
    assert mode(sock_path(os.path.join(run, "instances", vm + ".sock"))) == 0o600
    assert mode(sock_path(os.path.join(run, "instances", vm + "-ws.sock"))) == 0o600
    vmdir = os.path.join(run, "sessions", vm)
    assert mode(vmdir) == 0o700
    for f in ("serial.log", "process.log", "vm.json", "overlay.img", "workspace.img"):
        assert mode(os.path.join(vmdir, f)) == 0o600, f


def test_cli_auto_starts_the_service(home):
    p = home.cli("version", check=True)
    assert p.stdout.decode().splitlines() == ["capsem 0.1.0", "capsem-service: not running"]
    assert not os.path.exists(home.sock)  # version never starts it
    p = home.cli("list", check=True)
    assert p.stdout == b"No VMs.\n"
    assert os.path.exists(os.path.join(home.home, "run", "service.pid"))
    assert b"listening" in open(os.path.join(home.home, "logs", "service.log"), "rb").read()


def test_second_service_exits_and_first_keeps_serving(home):
    first = start_service(home)
    second = subprocess.run([os.path.join(BIN_DIR, "capsem-service")], env=home.env,
                            capture_output=True, timeout=30)
    assert second.returncode == 0
    assert b"already running" in second.stderr
    assert first.poll() is None
    assert home.api("GET", "/version").status == 200


def test_service_crash_leaves_vms_running_and_restart_readopts(home):
    first = start_service(home)
    vm = home.create(profile_id="minimal", ram_mb=512)
    assert home.exec(vm["id"], "echo before")["stdout"] == "before\n"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert os.path.exists(home.sock)  # a stale socket is left behind
    second = start_service(home)
    listed = home.vms()
    assert [v["id"] for v in listed] == [vm["id"]]
    assert listed[0]["name"] == vm["name"] and listed[0]["status"] == "Running"
    assert home.exec(vm["name"], "echo after")["stdout"] == "after\n"
    assert second.poll() is None


def test_guest_poweroff_destroys_an_ephemeral_vm(capsem):
    vm = capsem.create(profile_id="minimal", ram_mb=512)
    capsem.exec(vm["id"], "true")
    capsem.exec(vm["id"], "(sleep 0.5; poweroff) >/dev/null 2>&1 &")
    wait_for(lambda: capsem.api("GET", f"/vms/{vm['id']}/info").status == 404, 60,
             "the VM to power off")
    sessions = os.listdir(os.path.join(capsem.home, "run", "sessions"))
    assert not [d for d in sessions if d.startswith(vm["id"])]  # clean exit: nothing kept


def test_settings_layers_locks_and_limits(home, tmp_path):
    corp = tmp_path / "corp.toml"
    corp.write_text('[vm]\nshutdown_grace_secs = 3\n')
    with open(os.path.join(home.home, "user.toml"), "w") as f:
        f.write('[vm]\nram_mb = 512\nprofile = "minimal"\nshutdown_grace_secs = 20\nbogus = 1\n')
    home.env["CAPSEM_CORP_CONFIG"] = str(corp)
    start_service(home)
    info = home.api("GET", "/settings/info").json
    by_id = {s["id"]: s for s in info["settings"]}
    assert by_id["vm.ram_mb"]["value"] == 512 and by_id["vm.ram_mb"]["source"] == "user"
    assert by_id["vm.shutdown_grace_secs"]["value"] == 3
    assert by_id["vm.shutdown_grace_secs"]["corp_locked"] is True
    assert any("bogus" in i for i in info["issues"])
    r = home.api("PATCH", "/settings/edit", {"vm.shutdown_grace_secs": 5})
    assert r.status == 403
    r = home.api("PATCH", "/settings/edit", {"vm.cpus": 99})
    assert r.status == 400
    r = home.api("PATCH", "/settings/edit", {"limits.max_concurrent_vms": 1, "vm.cpus": 1})
    assert r.status == 200
    assert "max_concurrent_vms = 1" in open(os.path.join(home.home, "user.toml")).read()
    first = home.create()  # profile and RAM from user.toml
    assert home.api("GET", f"/vms/{first['id']}/info").json["ram_mb"] == 512
    assert home.api("GET", f"/vms/{first['id']}/info").json["cpus"] == 1
    r = home.api("POST", "/vms/create", {})
    assert r.status == 409 and "too many running VMs (limit 1)" in r.json["error"]
    home.delete(first["id"])
