"""System-test fixtures: real capsem binaries, real QEMU, real guest image.

Each test session gets its own CAPSEM_HOME in a temporary directory with the
assets hard-linked in, its own capsem-service, and a leak check at the end:
no capsem-process or QEMU of this home may survive the session.

Environment (set by the Makefile):
  CAPSEM_TEST_BIN_DIR  directory with capsem, capsem-service, capsem-process
  CAPSEM_TEST_ASSETS   asset source directory (manifest.json + v<ver>/)
"""
import glob
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import psutil
import pytest

BIN_DIR = os.environ.get("CAPSEM_TEST_BIN_DIR", "")
ASSETS = os.environ.get("CAPSEM_TEST_ASSETS", "")
SANITIZER_VARS = ("ASAN_OPTIONS", "UBSAN_OPTIONS")


def pytest_configure(config):
    config.addinivalue_line("markers", "fast: quick tests, also run against sanitizer builds")
    if not BIN_DIR or not os.path.isdir(ASSETS):
        raise pytest.UsageError("set CAPSEM_TEST_BIN_DIR and CAPSEM_TEST_ASSETS (use make system-test)")


def sock_path(path):
    """The path a UNIX socket really has: long ones are mapped the way
    src/lib/base/sockpath.c maps them (sun_path holds 107 bytes)."""
    if len(path.encode()) < 108:
        return path
    digest = hashlib.sha256(path.encode()).hexdigest()[:16]
    return f"/tmp/capsem-{os.getuid()}/{digest}.sock"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


def wait_for(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = cond()
        except OSError:  # e.g. a socket that is not accepting yet
            v = None
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Capsem:
    """A capsem installation under test: its home, API client and CLI runner."""

    def __init__(self, home):
        self.home = home
        self.sock = sock_path(os.path.join(home, "run", "service.sock"))
        self.env = dict(os.environ, CAPSEM_HOME=home)
        for var in SANITIZER_VARS:
            if var in self.env:
                self.env[var] += f":log_path={home}/sanitizer"

    def api(self, method, path, body=None, raw=None, timeout=300, headers=None):
        conn = UnixHTTPConnection(self.sock, timeout)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, path, body=data, headers=headers or {})
        r = conn.getresponse()
        out = Response(r.status, dict(r.getheaders()), r.read())
        conn.close()
        return out

    def cli(self, *args, input=None, timeout=300, check=False):
        p = subprocess.run([os.path.join(BIN_DIR, "capsem"), *args], input=input,
                           capture_output=True, env=self.env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"capsem {' '.join(args)} -> {p.returncode}: {p.stderr!r}")
        return p

    def create(self, **body):
        r = self.api("POST", "/vms/create", body)
        assert r.status == 200, r
        return r.json

    def exec(self, vm, command, timeout_secs=None, timeout=300):
        body = {"command": command}
        if timeout_secs is not None:
            body["timeout_secs"] = timeout_secs
        r = self.api("POST", f"/vms/{vm}/exec", body, timeout=timeout)
        assert r.status == 200, r
        return r.json

    def delete(self, vm):
        return self.api("DELETE", f"/vms/{vm}/delete")

    def vms(self):
        return self.api("GET", "/vms/list").json["sandboxes"]


def our_processes(home):
    """capsem-process and QEMU processes that belong to this home."""
    found = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if home in cmd and ("capsem-process" in cmd or "qemu-system" in cmd
                            or "capsem-service" in cmd):
            found.append((p.info["pid"], cmd[:160]))
    return found


def install_assets(home):
    dst = os.path.join(home, "assets")
    os.makedirs(dst)
    for entry in os.listdir(ASSETS):
        src = os.path.join(ASSETS, entry)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dst, entry), copy_function=os.link)
        else:
            shutil.copy(src, os.path.join(dst, entry))


@pytest.fixture(scope="session")
def capsem():
    home = tempfile.mkdtemp(prefix="capsem-test-")
    os.chmod(home, 0o700)
    install_assets(home)
    c = Capsem(home)
    log = open(os.path.join(home, "service.log"), "ab")
    svc = subprocess.Popen([os.path.join(BIN_DIR, "capsem-service"), "--foreground"],
                           env=c.env, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(c.sock) and c.api("GET", "/version").status == 200,
                 30, "capsem-service to answer")
        c.service = svc
        yield c
    finally:
        for vm in c.vms() if svc.poll() is None else []:
            c.delete(vm["id"])
        if svc.poll() is None:
            wait_for(lambda: not c.vms(), 30, "VMs to be deleted")
            svc.send_signal(signal.SIGTERM)
        svc.wait(timeout=30)
        log.close()
        deadline = time.monotonic() + 15
        while our_processes(home) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not our_processes(home), f"leaked processes: {our_processes(home)}"
        assert svc.returncode == 0, f"capsem-service exited {svc.returncode}"
        run = os.path.join(home, "run")
        left = [f for f in os.listdir(os.path.join(run, "instances"))] + \
            [f for f in ("service.sock", "service.pid") if os.path.exists(os.path.join(run, f))]
        assert not left, f"leaked sockets or files: {left}"
        reports = glob.glob(os.path.join(home, "sanitizer*"))
        text = "".join(open(f, errors="replace").read() for f in reports)
        assert not reports, f"sanitizer reports:\n{text[:20000]}"
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def vm(capsem):
    """A running minimal-profile VM shared by a test module."""
    info = capsem.create(profile_id="minimal", ram_mb=512, cpus=2)
    yield info["id"]
    capsem.delete(info["id"])
