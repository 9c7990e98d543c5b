#!/usr/bin/env python3
"""Checks the capsem CLI binary against tests/tools/fake_service.py (no VMs):
usage errors and exit codes, create/list/info/exec/run/delete/version output,
byte-exact exec output, auto-start of a (fake) capsem-service, and
`capsem shell` on a pseudo-terminal (prompt and output relayed, window size on
connect and on SIGWINCH, Ctrl-] detaching, guest shell exit, temporary VMs
deleted, the local terminal restored, no terminal refused); the state
commands (suspend, resume, stop, restart, persist, purge), fork and image,
cp, logs (and --follow), history, setup and first-use setup, doctor (with
a fake guest in its own network namespace, and Ctrl-C), and service
status/stop/start/install.

Usage: cli_check.py PATH/TO/capsem
Prints TAP; exits 0 when every check passes.
"""
import fcntl
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time

HERE = os.path.dirname(os.path.abspath(__file__))
results = []


def check(cond, desc, got=None):
    results.append(bool(cond))
    print("%s %d - %s" % ("ok" if cond else "not ok", len(results), desc), flush=True)
    if not cond and got is not None:
        for line in str(got).splitlines():
            print("#   %s" % line, flush=True)
    return cond


class Pty:
    """Runs argv (through sh, so we can run stty afterwards) on a new pty."""

    def __init__(self, script, env, rows=40, cols=120):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve("/bin/sh", ["sh", "-c", script], env)
        self.set_size(rows, cols)
        self.out = b""

    def set_size(self, rows, cols):
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data):
        os.write(self.fd, data)

    def expect(self, needle, timeout=10.0):
        deadline = time.time() + timeout
        while needle.encode() not in self.out:
            left = deadline - time.time()
            if left <= 0:
                return False
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    return needle.encode() in self.out
                if not data:
                    return needle.encode() in self.out
                self.out += data
        return True

    def wait(self, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.expect("\0never", timeout=0.2)  # drain
                return os.waitstatus_to_exitcode(status)
            self.expect("\0never", timeout=0.05)
        os.kill(self.pid, signal.SIGKILL)
        return None


def capsem(cli, env, *args, input=None, timeout=30):
    return subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def start_fake(sock, log, *extra, wrapper=False):
    """A fake service on sock; wrapper=True runs it with argv[0] capsem-service."""
    argv = [sys.executable, os.path.join(HERE, "fake_service.py"), "--uds-path", sock,
            "--log", log, *extra]
    if wrapper:
        argv = ["bash", "-c", 'exec -a capsem-service "$@"', "bash", *argv]
    p = subprocess.Popen(argv)
    deadline = time.time() + 10
    while not os.path.exists(sock) and time.time() < deadline:
        time.sleep(0.05)
    return p


def stop_fake(p):
    p.terminate()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def wait_until(cond, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def main():
    cli = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="capsem-shell-")
    sock = os.path.join(tmp, "service.sock")
    log = os.path.join(tmp, "fake.log")
    fake = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_service.py"),
                             "--uds-path", sock, "--log", log])
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.05)
        env = dict(os.environ, CAPSEM_UDS_PATH=sock, CAPSEM_HOME=tmp, TERM="xterm")
        command_checks(cli, env)
        shell_checks(cli, env, log)
        state_checks(cli, env)
        image_checks(cli, env)
        cp_checks(cli, env, tmp)
        logs_history_checks(cli, env)
        purge_checks(cli, env)
        assets = make_assets(os.path.join(tmp, "assets-src"))
        setup_checks(cli, tmp, assets)
        autostart_checks(cli, tmp, assets)
        doctor_checks(cli, tmp, assets)
        service_checks(cli, tmp, assets)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
        for pid in subprocess.run(["pgrep", "-f", "fake_service.py --uds-path %s/" % tmp],
                                  capture_output=True, text=True).stdout.split():
            os.kill(int(pid), signal.SIGTERM)  # an auto-started one left by a failed check
        shutil.rmtree(tmp, ignore_errors=True)
    failed = results.count(False)
    print("1..%d" % len(results))
    return 1 if failed else 0


def command_checks(cli, env):
    r = capsem(cli, env)
    check(r.returncode == 0 and "Commands:" in r.stdout and "shell" in r.stdout,
          "capsem alone prints help, exit 0")
    r = capsem(cli, env, "frob")
    check(r.returncode == 2 and r.stderr.startswith("Error: unknown command: frob\nUsage: "),
          "unknown command: usage on stderr, exit 2")
    r = capsem(cli, env, "list", "--frob")
    check(r.returncode == 2 and "Usage: capsem list" in r.stderr, "unknown flag: exit 2")
    r = capsem(cli, env, "exec", "vm")
    check(r.returncode == 2 and "missing argument: COMMAND" in r.stderr, "missing COMMAND")
    for cmd in ("run", "create", "exec", "shell", "list", "info", "delete", "version", "resume",
                "suspend", "stop", "restart", "persist", "purge", "logs", "history", "fork", "cp",
                "doctor", "setup", "image list", "image info", "image delete", "service install",
                "service uninstall", "service start", "service stop", "service status"):
        r = capsem(cli, env, *cmd.split(), "--help")
        check(r.returncode == 0 and r.stdout.startswith("Usage: capsem " + cmd) and
              "Examples:" in r.stdout, "%s --help" % cmd)
    for group in ("image", "service"):
        r = capsem(cli, env, group)
        check(r.returncode == 0 and r.stdout.startswith("Usage: capsem %s COMMAND" % group) and
              ("%s list" % group in r.stdout or "%s status" % group in r.stdout),
              "%s alone lists its commands" % group)
    r = capsem(cli, env, "image", "frob")
    check(r.returncode == 2 and r.stderr.startswith("Error: unknown command: image frob\n"),
          "unknown sub-command: exit 2")
    r = capsem(cli, env, "persist", "vm")
    check(r.returncode == 2 and "missing argument: NAME" in r.stderr, "persist without NAME")
    r = capsem(cli, env, "cp", "a", "b")
    check(r.returncode == 2 and "exactly one of SRC and DST must be VM:PATH" in r.stderr,
          "cp with two host paths: usage error")
    r = capsem(cli, env, "cp", "x:a", "y:b")
    check(r.returncode == 2 and "exactly one of SRC and DST must be VM:PATH" in r.stderr,
          "cp with two VM paths: usage error")
    r = capsem(cli, env, "logs", "vm", "--serial", "--process")
    check(r.returncode == 2 and "give --serial or --process, not both" in r.stderr,
          "logs --serial --process: usage error")
    r = capsem(cli, env, "history", "vm", "--tail", "0")
    check(r.returncode == 2 and "invalid --tail value" in r.stderr, "history --tail 0")
    r = capsem(cli, env, "list")
    check(r.returncode == 0 and r.stdout == "No VMs.\n", "empty list")
    r = capsem(cli, env, "create", "--ram", "1.5G")
    check(r.returncode == 2 and "invalid --ram value" in r.stderr, "bad --ram is a usage error")
    r = capsem(cli, env, "create", "--cpu", "64")
    check(r.returncode == 1 and r.stderr == "Error: cpus must be between 1 and 8\n",
          "service error text printed once, exit 1")
    r = capsem(cli, env, "create", "-n", "box", "--ram", "512M")
    vid = r.stdout.strip()
    check(r.returncode == 0 and len(vid) == 36, "create prints the id")
    r = capsem(cli, env, "list")
    lines = r.stdout.splitlines()
    check(lines[0].split() == ["ID", "NAME", "STATUS", "TYPE", "CPUS", "RAM", "UPTIME"] and
          lines[1].startswith(vid + "  box  ") and "512M" in lines[1], "list table")
    r = capsem(cli, env, "info", "box")
    check(r.returncode == 0 and "Name: box\n" in r.stdout and "RAM: 512M\n" in r.stdout,
          "info lines")
    r = capsem(cli, env, "info", vid, "--json")
    check(r.returncode == 0 and json.loads(r.stdout)["name"] == "box" and
          r.stdout.startswith('{\n  "id"'), "info --json, 2-space indent")
    r = subprocess.run([cli, "exec", "box", "printf 'a\\0b\\n'; echo e >&2; exit 5"],
                       env=env, capture_output=True, timeout=30)
    check(r.returncode == 5 and r.stdout == b"a\0b\n" and r.stderr == b"e\n",
          "exec: bytes exact, streams separate, exit code passed through")
    r = capsem(cli, env, "exec", "box", "--timeout", "1", "--", "sleep", "5")
    check(r.returncode == 124 and r.stderr.endswith("capsem: command timed out after 1 s\n"),
          "exec timeout: 124 and note")
    r = capsem(cli, env, "run", "-e", "GREETING=hi there", "--", "echo", "$GREETING")
    check(r.returncode == 0 and r.stdout == "\n", "run joins words (env is the guest's)")
    r = capsem(cli, env, "delete", "box", "nope")
    check(r.returncode == 1 and r.stdout == "box\n" and
          r.stderr == "Error: VM not found: nope\n", "delete: names printed, exit 1 on failure")
    r = capsem(cli, env, "version")
    check(r.returncode == 0 and r.stdout == "capsem 0.1.0\ncapsem-service 0.1.0\n", "version")


def vm_field(cli, env, ref, field):
    r = capsem(cli, env, "info", ref, "--json")
    return json.loads(r.stdout).get(field) if r.returncode == 0 else None


def state_checks(cli, env):
    r = capsem(cli, env, "create", "-n", "dev", "--profile", "minimal")
    dev = r.stdout.strip()
    eph = capsem(cli, env, "create").stdout.strip()
    eph_name = vm_field(cli, env, eph, "name")
    check(r.returncode == 0 and eph_name and eph_name.startswith("code-"), "create dev + ephemeral")
    r = capsem(cli, env, "suspend", eph)
    check(r.returncode == 1 and r.stderr ==
          "Error: ephemeral VMs cannot be suspended (persist first)\n", "suspend ephemeral refused")
    r = capsem(cli, env, "suspend", dev)
    check(r.returncode == 0 and r.stdout == "dev\n" and
          vm_field(cli, env, "dev", "status") == "Suspended", "suspend by id prints the name")
    r = capsem(cli, env, "list")
    row = [l for l in r.stdout.splitlines() if l.startswith(dev)]
    check(row and row[0].split()[2:4] == ["Suspended", "persistent"] and row[0].endswith("  -"),
          "list shows Suspended without uptime")
    r = capsem(cli, env, "resume", "dev")
    check(r.returncode == 0 and r.stdout == dev + "\n" and
          vm_field(cli, env, "dev", "status") == "Running", "resume prints the id")
    r = capsem(cli, env, "resume", "dev")
    check(r.returncode == 0 and r.stdout == dev + "\n", "resume of a Running VM does nothing")
    r = capsem(cli, env, "stop", "dev", eph, "nope")
    check(r.returncode == 1 and r.stdout == "dev\n%s\n" % eph_name and
          r.stderr == "Error: VM not found: nope\n", "stop: names in order, exit 1 on failure")
    check(vm_field(cli, env, "dev", "status") == "Stopped" and
          vm_field(cli, env, eph, "status") is None, "stop: persistent Stopped, ephemeral gone")
    r = capsem(cli, env, "stop", "dev")
    check(r.returncode == 0 and r.stdout == "dev\n", "stopping a Stopped VM is fine")
    r = capsem(cli, env, "suspend", "dev")
    check(r.returncode == 1 and r.stderr == "Error: cannot pause VM in state Stopped\n",
          "suspend of a Stopped VM: service's 409 text")
    r = capsem(cli, env, "restart", "dev")
    check(r.returncode == 0 and r.stdout == dev + "\n" and
          vm_field(cli, env, "dev", "status") == "Running", "restart of a Stopped VM boots it")
    r = capsem(cli, env, "restart", "dev")
    check(r.returncode == 0 and vm_field(cli, env, "dev", "status") == "Running",
          "restart of a Running VM")
    eph = capsem(cli, env, "create").stdout.strip()
    r = capsem(cli, env, "restart", eph)
    check(r.returncode == 1 and r.stderr == "Error: only persistent VMs can be restarted\n",
          "restart of an ephemeral VM refused")
    r = capsem(cli, env, "persist", eph, "keep")
    check(r.returncode == 0 and r.stdout == "keep\n" and
          vm_field(cli, env, eph, "persistent") is True and
          vm_field(cli, env, "keep", "id") == eph, "persist: same id, new name, persistent")
    r = capsem(cli, env, "persist", "keep", "other")
    check(r.returncode == 1 and r.stderr == "Error: VM is already persistent\n",
          "persist twice refused")
    r = capsem(cli, env, "persist", "dev", "bad/name")
    check(r.returncode == 1 and "invalid name" in r.stderr, "persist: service validates NAME")
    capsem(cli, env, "delete", "keep")


def image_checks(cli, env):
    r = capsem(cli, env, "image", "list")
    check(r.returncode == 0 and r.stdout == "No images.\n", "no images")
    r = capsem(cli, env, "fork", "dev", "base", "-d", "python + deps")
    check(r.returncode == 0 and r.stdout == "base\n", "fork prints the image name")
    r = capsem(cli, env, "fork", "dev", "base")
    check(r.returncode == 1 and r.stderr == "Error: image name already taken: base\n",
          "fork to a taken name")
    r = capsem(cli, env, "image", "ls")
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and lines[0].split() ==
          ["NAME", "BASE", "PROFILE", "SIZE", "CREATED", "DESCRIPTION"] and
          lines[1].startswith("base  2026.11.1  minimal  3.0M  ") and
          lines[1].endswith("  python + deps"), "image ls table")
    r = capsem(cli, env, "image", "list", "-q")
    check(r.stdout == "base\n", "image list -q")
    r = capsem(cli, env, "image", "list", "--json")
    check(json.loads(r.stdout)["images"][0]["forked_from"] == "dev" and
          r.stdout.startswith('{\n  "images"'), "image list --json")
    vid = capsem(cli, env, "create", "--image", "base").stdout.strip()
    r = capsem(cli, env, "image", "info", "base")
    name = vm_field(cli, env, vid, "name")
    check(r.returncode == 0 and "Name: base\n" in r.stdout and "Forked from: dev\n" in r.stdout
          and "In use by: %s\n" % name in r.stdout and vm_field(cli, env, vid, "image") == "base",
          "create --image, image info lines")
    r = capsem(cli, env, "image", "info", "base", "--json")
    check(json.loads(r.stdout)["in_use_by"] == [name], "image info --json")
    r = capsem(cli, env, "image", "rm", "base")
    check(r.returncode == 1 and r.stderr == "Error: image in use by: %s\n" % name,
          "image in use cannot be deleted")
    capsem(cli, env, "delete", vid)
    r = capsem(cli, env, "image", "delete", "base", "nope")
    check(r.returncode == 1 and r.stdout == "base\n" and
          r.stderr == "Error: image not found: nope\n", "image delete: names, exit 1 on failure")
    r = capsem(cli, env, "create", "--image", "base")
    check(r.returncode == 1 and r.stderr == "Error: image not found: base\n",
          "create from a deleted image")


def cp_checks(cli, env, tmp):
    src = os.path.join(tmp, "payload.bin")
    data = bytes(range(256)) * 40 + b"\0end"
    with open(src, "wb") as f:
        f.write(data)
    r = capsem(cli, env, "cp", src, "dev:in/")
    check(r.returncode == 0 and r.stdout == "" and
          r.stderr == "Copied %d bytes: %s -> dev:in/payload.bin\n" % (len(data), src),
          "cp host -> VM dir/: source name kept, message on stderr")
    r = subprocess.run([cli, "exec", "dev", "sha256sum in/payload.bin"], env=env,
                       capture_output=True, text=True)
    check(r.stdout.split()[0] == hashlib.sha256(data).hexdigest(), "bytes arrived intact")
    outdir = os.path.join(tmp, "out")
    os.makedirs(outdir)
    r = capsem(cli, env, "cp", "dev:/root/in/payload.bin", outdir)
    got = open(os.path.join(outdir, "payload.bin"), "rb").read()
    check(r.returncode == 0 and got == data and r.stderr ==
          "Copied %d bytes: dev:/root/in/payload.bin -> %s/payload.bin\n" % (len(data), outdir),
          "cp VM -> host directory")
    r = subprocess.run([cli, "cp", "dev:in/payload.bin", "-"], env=env, capture_output=True)
    check(r.returncode == 0 and r.stdout == data, "cp VM -> stdout, bytes exact")
    r = subprocess.run([cli, "cp", "-", "dev:stdin.txt"], env=env, input=b"from stdin\n",
                       capture_output=True)
    r2 = capsem(cli, env, "exec", "dev", "cat stdin.txt")
    check(r.returncode == 0 and r2.stdout == "from stdin\n" and
          r.stderr == b"Copied 11 bytes: - -> dev:stdin.txt\n", "cp stdin -> VM")
    r = capsem(cli, env, "cp", "-", "dev:", input="x")
    check(r.returncode == 1 and "give a file name" in r.stderr, "stdin needs a file name")
    r = capsem(cli, env, "cp", "dev:nope.txt", outdir)
    check(r.returncode == 1 and r.stderr == "Error: file not found: nope.txt\n",
          "missing guest file: service's error")
    r = capsem(cli, env, "cp", "dev:/etc/passwd", outdir)
    check(r.returncode == 1 and r.stderr == "Error: path escapes the workspace\n",
          "path outside /root refused by the service")
    r = capsem(cli, env, "cp", outdir, "dev:x")
    check(r.returncode == 1 and "is a directory: cp copies single files" in r.stderr,
          "host directory as SRC refused")
    r = capsem(cli, env, "cp", "dev:in", outdir)
    check(r.returncode == 1 and "is a directory" in r.stderr, "guest directory as SRC refused")


def logs_history_checks(cli, env):
    for cmd in ("echo one", "false", "echo three"):
        capsem(cli, env, "exec", "dev", cmd)
    r = capsem(cli, env, "history", "dev")
    lines = r.stdout.splitlines()
    col = lines[0].find("COMMAND") if lines else 0
    check(r.returncode == 0 and lines[0].split() == ["TIME", "EXIT", "DURATION", "COMMAND"] and
          [l[col:] for l in lines[-3:]] == ["echo one", "false", "echo three"] and
          lines[-2].split()[1] == "1", "history table oldest first with exit codes", r)
    r = capsem(cli, env, "history", "dev", "--tail", "1")
    check(len(r.stdout.splitlines()) == 2 and r.stdout.endswith("echo three\n"), "history --tail")
    r = capsem(cli, env, "history", "dev", "--search", "one", "--json")
    j = json.loads(r.stdout)
    check([c["command"] for c in j["commands"]] == ["echo one"] and "has_more" in j,
          "history --search --json")
    r = capsem(cli, env, "history", "dev", "--all")
    check(r.returncode == 0 and "sha256sum in/payload.bin" in r.stdout, "history --all")
    r = capsem(cli, env, "logs", "dev")
    check(r.returncode == 0 and r.stdout.startswith("--- process.log (dev) ---\n") and
          "exec: echo three -> 0\n--- serial.log (dev) ---\n[    0.000000] Linux" in r.stdout,
          "logs: both logs under headers")
    r = capsem(cli, env, "logs", "dev", "--process", "--tail", "1")
    check(r.stdout.endswith("exec: echo three -> 0\n") and r.stdout.count("\n") == 1,
          "logs --process --tail 1")
    r = capsem(cli, env, "logs", "dev", "--serial")
    check(r.stdout == "[    0.000000] Linux version 6.1 (fake)\n", "logs --serial")

    follow = subprocess.Popen([cli, "logs", "dev", "--process", "--tail", "1", "--follow"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fcntl.fcntl(follow.stdout, fcntl.F_SETFL, os.O_NONBLOCK)
    got = [b""]

    def seen(text):
        try:
            got[0] += follow.stdout.read() or b""
        except (BlockingIOError, TypeError):
            pass
        return text.encode() in got[0]
    check(wait_until(lambda: seen("echo three -> 0")), "follow shows the tail first")
    capsem(cli, env, "exec", "dev", "echo marker")
    check(wait_until(lambda: seen("exec: echo marker -> 0")) and
          got[0].count(b"echo three") == 1, "follow prints new lines once")
    follow.send_signal(signal.SIGINT)
    check(follow.wait(timeout=10) == -signal.SIGINT, "follow ends on Ctrl-C")
    vid = capsem(cli, env, "create", "-n", "short").stdout.strip()
    follow = subprocess.Popen([cli, "logs", "short", "--follow"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    capsem(cli, env, "delete", vid)
    out, err = follow.communicate(timeout=10)
    check(follow.returncode == 0 and err == "capsem: short is gone\n" and
          out.startswith("--- process.log (short) ---\n"), "follow ends when the VM is deleted")


def purge_checks(cli, env):
    capsem(cli, env, "create")
    capsem(cli, env, "create")
    r = capsem(cli, env, "purge")
    check(r.returncode == 0 and r.stdout == "Purged 2 VMs (2 ephemeral, 0 persistent).\n",
          "purge: ephemeral VMs only")
    capsem(cli, env, "create")
    r = capsem(cli, env, "purge", "--all", input="n\n")
    check(r.returncode == 0 and r.stdout == "" and
          r.stderr == "Delete 2 VMs (1 persistent)? [y/N] \nAborted.\n",
          "purge --all asks on stderr; no aborts")
    r = capsem(cli, env, "purge", "--all", input="")
    check(r.returncode == 0 and r.stderr.endswith("Aborted.\n"), "end of input aborts")
    r = capsem(cli, env, "purge", "--all", input="YES\n")
    check(r.returncode == 0 and r.stdout == "Purged 2 VMs (1 ephemeral, 1 persistent).\n",
          "purge --all after yes")
    r = capsem(cli, env, "purge", "--all", "-y")
    check(r.returncode == 0 and r.stdout == "Purged 0 VMs (0 ephemeral, 0 persistent).\n" and
          r.stderr == "", "purge -y asks nothing")


def make_assets(src):
    """A tiny asset source: manifest.json + v<ver>/ with made-up files."""
    ver = "test1"
    vdir = os.path.join(src, "v" + ver)
    os.makedirs(vdir)
    entry = {"arch": "x86_64", "rootfs": {}}
    for key, name in (("kernel", "vmlinux"), ("initrd", "initrd.img"),
                      ("code", "rootfs-code.erofs"), ("minimal", "rootfs-minimal.erofs")):
        data = ("%s contents\n" % name).encode() * 100
        with open(os.path.join(vdir, name), "wb") as f:
            f.write(data)
        e = {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        if key in ("kernel", "initrd"):
            entry[key] = e
        else:
            entry["rootfs"][key] = e
    with open(os.path.join(src, "manifest.json"), "w") as f:
        json.dump({"format": 1, "current": ver, "versions": {ver: entry}}, f)
    return src


def setup_env(tmp, home, **extra):
    env = dict(os.environ, CAPSEM_HOME=home, XDG_CONFIG_HOME=os.path.join(tmp, "xdg"),
               XDG_RUNTIME_DIR=os.path.join(tmp, "xdg-run"), **extra)
    for var in ("CAPSEM_UDS_PATH", "CAPSEM_RUN_DIR", "CAPSEM_ASSETS_SOURCE",
                "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                "GH_TOKEN", "GITHUB_TOKEN"):
        env.pop(var, None)
    env.update(extra)
    return env


def fake_npm_path(tmp):
    """A PATH whose npm prints a known registry, whatever this machine has."""
    npmbin = os.path.join(tmp, "npm-bin")
    os.makedirs(npmbin, exist_ok=True)
    with open(os.path.join(npmbin, "npm"), "w") as f:
        f.write("#!/bin/sh\n[ \"$*\" = 'config get registry' ] || exit 2\n"
                "echo https://Registry.Check.Example:8443/npm/\n")
    os.chmod(os.path.join(npmbin, "npm"), 0o755)
    return npmbin + ":" + os.environ.get("PATH", "/usr/bin:/bin")


def setup_checks(cli, tmp, assets):
    home = os.path.join(tmp, "setup-home")
    env = setup_env(tmp, home, PATH=fake_npm_path(tmp))
    r = capsem(cli, env, "setup", "--assets-from", assets)
    lines = r.stdout.splitlines()
    check(r.returncode == 0 and [l.split(":")[0] for l in lines[:11]] ==
          ["[ok] layout", "[ok] assets", "[ok] config", "[skip] credentials", "[ok] ca",
           "[ok] npm", "[skip] dashboard", "[skip] service",
           "[ok] kvm" if lines[8].startswith("[ok]") else "[warn] kvm", "[ok] cleanup",
           "[ok] state"] and
          lines[5] == "[ok] npm: registry host registry.check.example (from %s/npm-bin/npm "
          "config get registry)" % tmp and
          lines[1] == "[ok] assets: installed vtest1 from %s (linked, sha256 verified); "
          "current vtest1" % assets and
          lines[-1].startswith("Setup complete: %s (assets vtest1, " % home),
          "setup: one line per step, then a summary")
    check(os.stat(home).st_mode & 0o777 == 0o700 and
          os.path.exists(os.path.join(home, "assets", "vtest1", "vmlinux")) and
          json.load(open(os.path.join(home, "setup.json")))["assets_version"] == "test1" and
          json.load(open(os.path.join(home, "setup.json")))["npm_registry_host"] ==
          "registry.check.example" and
          "# cpus = 2" in open(os.path.join(home, "user.toml")).read(),
          "setup: layout, assets, user.toml, setup.json (with the npm registry host)")
    r = capsem(cli, env, "setup", "--assets-from", assets)
    check(r.returncode == 0 and "[ok] assets: vtest1 already installed; current vtest1" in r.stdout
          and "user.toml kept" in r.stdout, "setup again: nothing to do")
    nonpm = os.path.join(tmp, "no-npm-bin")
    os.makedirs(nonpm, exist_ok=True)
    r = capsem(cli, dict(env, PATH=nonpm), "setup", "--force", "--non-interactive",
               "--no-service", "--assets-from", assets)
    check(r.returncode == 0 and "[ok] assets: re-installed vtest1" in r.stdout and
          "[skip] service: --no-service given" in r.stdout, "setup --force --no-service")
    check("\n[skip] npm: npm not found on PATH; the @npm host list stays empty\n" in r.stdout and
          "npm_registry_host" not in json.load(open(os.path.join(home, "setup.json"))),
          "setup without npm: [skip], and setup.json records no npm host", r.stdout)
    r = capsem(cli, env, "setup", "--assets-from", os.path.join(tmp, "nowhere"))
    check(r.returncode == 1 and r.stderr.startswith("Error: assets: asset source ") and
          "nowhere" in r.stderr, "setup from a missing directory fails")
    r = capsem(cli, env, "setup", "--assets-from", "https://example.com/assets")
    check(r.returncode == 1 and "directory only" in r.stderr, "setup from a URL is refused")


def autostart_checks(cli, tmp, assets):
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    shutil.copy(cli, os.path.join(bindir, "capsem"))
    with open(os.path.join(bindir, "capsem-service"), "w") as f:
        f.write("#!/bin/sh\nexec %s %s --uds-path \"$CAPSEM_HOME/run/service.sock\" "
                "--version 0.0.9\n" % (sys.executable, os.path.join(HERE, "fake_service.py")))
    os.chmod(os.path.join(bindir, "capsem-service"), 0o755)
    home = os.path.join(tmp, "home")
    env = setup_env(tmp, home, CAPSEM_ASSETS_SOURCE=assets)
    cli2 = os.path.join(bindir, "capsem")
    r = capsem(cli2, env, "version")
    check(r.stdout.endswith("capsem-service: not running\n") and
          not os.path.exists(os.path.join(home, "run", "service.sock")) and
          not os.path.exists(os.path.join(home, "assets")),
          "version neither sets up nor starts the service")
    os.makedirs(os.path.join(home, "run"))
    marker = os.path.join(home, "run", "service.explicitly-stopped")
    open(marker, "w").close()
    r = capsem(cli2, env, "list")
    check(r.returncode == 1 and
          r.stderr.startswith("capsem: first use: running capsem setup --non-interactive\n"
                              "[ok] layout: ") and
          "[ok] assets: installed vtest1 from %s" % assets in r.stderr and
          r.stderr.endswith("\nError: service is stopped; run: capsem service start\n") and
          os.path.exists(os.path.join(home, "assets", "manifest.json")),
          "first use runs setup (stderr); the stop marker then prevents auto-start")
    os.unlink(marker)
    toml = os.path.join(home, "user.toml")
    kept = open(toml).read()
    with open(toml, "w") as f:
        f.write("[service]\nauto_start = false\n")
    r = capsem(cli2, env, "list")
    check(r.returncode == 1 and r.stderr == "Error: capsem-service is not running and "
          "service.auto_start is false; run: capsem service start\n",
          "service.auto_start = false turns auto-start off")
    with open(toml, "w") as f:
        f.write(kept)
    r = capsem(cli2, env, "list")
    check(r.returncode == 0 and r.stdout == "No VMs.\n" and
          r.stderr == "warning: capsem-service is 0.0.9, capsem is 0.1.0\n",
          "auto-start, then version mismatch warning")
    log = os.path.join(home, "logs", "service.log")
    check(os.path.exists(log) and "listening" in open(log).read() and
          os.stat(os.path.join(home, "logs")).st_mode & 0o777 == 0o700,
          "service output appended to logs/service.log (dir 0700)")
    r = capsem(cli2, env, "--uds-path", os.path.join(tmp, "none.sock"), "list")
    check(r.returncode == 1 and "cannot connect to capsem-service" in r.stderr,
          "--uds-path disables auto-start")
    env3 = setup_env(tmp, os.path.join(tmp, "home3"))
    r = capsem(cli2, env3, "list")
    check(r.returncode == 1 and r.stderr.endswith(
        "Error: setup failed: assets: no guest assets to install: pass --assets-from DIR or set "
        "CAPSEM_ASSETS_SOURCE (nothing at <prefix>/share/capsem/assets)\n") and
        not os.path.exists(os.path.join(tmp, "home3", "run", "service.sock")),
        "a first-use setup failure is the command's error")
    pids = subprocess.run(["pgrep", "-f", "fake_service.py --uds-path %s/run" % home],
                          capture_output=True, text=True).stdout.split()
    check(len(pids) == 1 and os.getsid(int(pids[0])) == int(pids[0]),
          "exactly one service, in its own session")
    for pid in pids:
        os.kill(int(pid), signal.SIGTERM)
    wait_until(lambda: not os.path.exists(os.path.join(home, "run", "service.sock")))


def doctor_lines(out):
    return [l.split(":")[0] for l in out.splitlines()]


def doctor_checks(cli, tmp, assets):
    home = os.path.join(tmp, "doc-home")
    env = setup_env(tmp, home)
    capsem(cli, env, "setup", "--assets-from", assets, "--no-service")
    sock = os.path.join(tmp, "doc.sock")
    netns = subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0
    fake = start_fake(sock, os.path.join(tmp, "doc.log"), *(["--netns"] if netns else []))
    env["CAPSEM_UDS_PATH"] = sock
    qemu = shutil.which("qemu-system-" + os.uname().machine) is not None
    try:
        r = capsem(cli, env, "doctor", "--quick")
        check(doctor_lines(r.stdout) == ["[warn] kvm", "[%s] qemu" % ("ok" if qemu else "fail"),
                                         "[ok] assets", "[ok] service",
                                         "[warn] gateway", "[ok] disk",
                                         "RESULT"] and
              "[ok] assets: vtest1 current (4 files, " in r.stdout and
              "[warn] gateway: not part of this version\n" in r.stdout and
              r.stdout.endswith("RESULT: %s\n" % ("PASS" if qemu else "FAIL")) and
              r.returncode == (0 if qemu else 1), "doctor --quick: one line per check")
        r = capsem(cli, env, "doctor", timeout=60)
        vm_lines = [l for l in r.stdout.splitlines() if l.startswith("[ok] vm: ")]
        if netns:
            check(len(vm_lines) == 4 and
                  "[ok] vm: guest arch %s, as the host\n" % os.uname().machine in r.stdout and
                  "[ok] vm: /root is writable\n" in r.stdout and
                  "[ok] vm: network interfaces: lo (" in r.stdout and
                  r.stdout.endswith("RESULT: %s\n" % ("PASS" if qemu else "FAIL")) and
                  capsem(cli, env, "list", "-q").stdout == "",
                  "doctor: test VM checks, VM deleted")
        else:
            check(True, "doctor VM checks # SKIP unshare -rnm does not work here")
        log = open(os.path.join(tmp, "doc.log")).read()
        check('"cpus":1' in log and '"ram_mb":1024' in log and '"owner_pid"' in log,
              "doctor VM: 1 CPU, 1024 MB, owned by the CLI")
        vmlinux = os.path.join(home, "assets", "vtest1", "vmlinux")
        data = open(vmlinux, "rb").read()
        os.unlink(vmlinux)  # a hard link to the source: replace it, do not write through it
        with open(vmlinux, "wb") as f:
            f.write(data + b"x")
        r = capsem(cli, env, "doctor", "--quick")
        check(r.returncode == 1 and "[fail] assets: " in r.stdout and
              r.stdout.endswith("RESULT: FAIL\n"), "doctor finds a changed asset")
    finally:
        stop_fake(fake)
    fake = start_fake(sock, os.path.join(tmp, "doc2.log"), "--exec-delay", "5")
    try:
        p = subprocess.Popen([cli, "doctor"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        check(wait_until(lambda: capsem(cli, env, "list", "-q").stdout.strip() != ""),
              "doctor created its VM")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
        check(p.returncode == 130 and err.endswith("Interrupted; the test VM was deleted.\n") and
              capsem(cli, env, "list", "-q").stdout == "", "doctor Ctrl-C: exit 130, VM deleted")
    finally:
        stop_fake(fake)


def service_checks(cli, tmp, assets):
    home = os.path.join(tmp, "svc-home")
    env = setup_env(tmp, home)
    capsem(cli, env, "setup", "--assets-from", assets)
    run = os.path.join(home, "run")
    sock = os.path.join(run, "service.sock")
    fake = start_fake(sock, os.path.join(tmp, "svc.log"), wrapper=True)
    try:
        r = capsem(cli, env, "service", "status")
        check(r.returncode == 0 and r.stdout ==
              "Installed: no\nRunning: yes (pid %d)\nVersion: 0.1.0\nSocket: %s\n"
              "Gateway: not part of this version\nAccel: tcg\n"
              "VMs: 0 (0 running, 0 stopped, 0 suspended, 0 defunct)\n" % (fake.pid, sock),
              "service status lines")
        capsem(cli, env, "create", "-n", "keep")
        r = capsem(cli, env, "service", "stop", "--vms")
        check(r.returncode == 0 and r.stdout == "Service stopped.\n" and
              fake.wait(timeout=15) == 0 and
              os.path.exists(os.path.join(run, "service.explicitly-stopped")),
              "service stop: SIGTERM to service.pid, marker written")
        log = open(os.path.join(tmp, "svc.log")).read()
        check("POST /vms/" in log and "/stop HTTP" in log, "service stop --vms stops VMs first", log)
        r = capsem(cli, env, "service", "status")
        check(r.returncode == 1 and "Running: no\n" in r.stdout and "Version: -\n" in r.stdout,
              "status of a stopped service: exit 1")
        r = capsem(cli, env, "list")
        check(r.returncode == 1 and
              r.stderr == "Error: service is stopped; run: capsem service start\n",
              "stopped service is not auto-started", r)
        r = capsem(cli, env, "service", "stop")
        check(r.returncode == 0 and r.stdout == "Service stopped.\n", "stopping twice is fine")
    finally:
        stop_fake(fake)
    bindir = os.path.join(tmp, "svc-bin")
    os.makedirs(bindir)
    shutil.copy(cli, os.path.join(bindir, "capsem"))
    with open(os.path.join(bindir, "capsem-service"), "w") as f:
        f.write("#!/bin/bash\nexec -a capsem-service %s %s --uds-path "
                "\"${CAPSEM_HOME:-$HOME/.capsem}/run/service.sock\"\n"
                % (sys.executable, os.path.join(HERE, "fake_service.py")))
    os.chmod(os.path.join(bindir, "capsem-service"), 0o755)
    cli2 = os.path.join(bindir, "capsem")
    r = capsem(cli2, env, "service", "start")
    check(r.returncode == 0 and r.stdout == "Service started.\n" and
          not os.path.exists(os.path.join(run, "service.explicitly-stopped")) and
          capsem(cli2, env, "service", "status").returncode == 0,
          "service start: marker cleared, service spawned")
    r = capsem(cli2, env, "service", "install")
    check(r.returncode == 1 and r.stderr == "Error: service install refuses to run with "
          "CAPSEM_HOME set: the user service always uses ~/.capsem; unset CAPSEM_HOME first\n",
          "service install refused with CAPSEM_HOME")
    r = capsem(cli2, env, "service", "stop")
    check(r.returncode == 0 and not os.path.exists(sock), "service stop of a spawned service")

    # install/uninstall with a fake systemctl and a fake user instance
    fakehome = os.path.join(tmp, "fake-user")
    xdg_run = os.path.join(tmp, "xdg-run2")
    os.makedirs(os.path.join(xdg_run, "systemd"))
    open(os.path.join(xdg_run, "systemd", "private"), "w").close()
    sysbin = os.path.join(tmp, "sysbin")
    os.makedirs(sysbin)
    calls = os.path.join(tmp, "systemctl.calls")
    with open(os.path.join(sysbin, "systemctl"), "w") as f:
        f.write("#!/bin/sh\necho \"$@\" >> %s\n"
                "if [ \"$2\" = start ] || [ \"$3\" = --now -a \"$2\" = enable ]; then\n"
                "  %s/capsem-service </dev/null >/dev/null 2>&1 &\nfi\n"
                "if [ \"$2\" = stop ] || [ \"$2\" = disable ]; then\n"
                "  kill $(cat %s/.capsem/run/service.pid 2>/dev/null) 2>/dev/null\nfi\n"
                "exit 0\n" % (calls, bindir, fakehome))
    os.chmod(os.path.join(sysbin, "systemctl"), 0o755)
    uenv = dict(os.environ, HOME=fakehome, XDG_RUNTIME_DIR=xdg_run,
                PATH=sysbin + ":" + os.environ["PATH"])
    for var in ("CAPSEM_HOME", "CAPSEM_RUN_DIR", "CAPSEM_UDS_PATH", "XDG_CONFIG_HOME"):
        uenv.pop(var, None)
    r = capsem(cli2, uenv, "setup", "--non-interactive", "--assets-from", assets)
    unit = os.path.join(fakehome, ".config", "systemd", "user", "capsem.service")
    check(r.returncode == 0 and "[ok] service: installed and started capsem.service" in r.stdout
          and os.path.exists(unit) and
          "ExecStart=%s/capsem-service --foreground\n" % bindir in open(unit).read(),
          "setup installs the user unit when a user systemd runs", r)
    wait_until(lambda: capsem(cli2, uenv, "service", "status").returncode == 0)
    r = capsem(cli2, uenv, "service", "status")
    check(r.returncode == 0 and r.stdout.startswith("Installed: yes (%s)\nRunning: yes" % unit),
          "status: installed and running")
    r = capsem(cli2, uenv, "service", "stop")
    check(r.returncode == 0 and "--user stop capsem" in open(calls).read(),
          "service stop uses systemctl when the unit is installed")
    os.unlink(os.path.join(fakehome, ".capsem", "run", "service.explicitly-stopped"))
    wait_until(lambda: not os.path.exists(os.path.join(fakehome, ".capsem", "run",
                                                       "service.sock")))
    r = capsem(cli2, uenv, "list")
    check(r.returncode == 0 and r.stdout == "No VMs.\n" and
          "--user start capsem" in open(calls).read(), "auto-start goes through systemctl")
    r = capsem(cli2, uenv, "service", "uninstall")
    check(r.returncode == 0 and r.stdout == "Service uninstalled.\n" and not os.path.exists(unit)
          and open(calls).read().endswith("--user disable --now capsem\n--user daemon-reload\n"),
          "service uninstall")
    r = capsem(cli2, uenv, "service", "uninstall")
    check(r.returncode == 1 and "not installed" in r.stderr, "uninstall twice")
    wait_until(lambda: not os.path.exists(os.path.join(fakehome, ".capsem", "run",
                                                       "service.sock")))


def shell_checks(cli, env, log):
    r = capsem(cli, env, "create", "-n", "dev")
    check(r.returncode == 0, "create dev")

    # Named VM: prompt, output, size on connect, SIGWINCH resize, Ctrl-], tty restored.
    p = Pty("'%s' shell dev; echo rc=$?; stty -a" % cli, env)
    check(p.expect("fake$ "), "prompt relayed")
    p.send(b"echo hello-$((40+2))\r")
    check(p.expect("hello-42"), "command output relayed")
    p.send(b"stty size\r")
    check(p.expect("40 120"), "window size sent on connect")
    p.set_size(50, 132)
    time.sleep(0.3)  # SIGWINCH reaches the CLI asynchronously
    p.send(b"stty size\r")
    check(p.expect("50 132"), "window size sent on SIGWINCH")
    p.send(b"\x1d")
    check(p.expect("Detached from dev; still running."), "Ctrl-] detaches with a message")
    check(p.expect("rc=0"), "detach exits 0")
    check(p.expect("icanon") and b"-icanon" not in p.out.split(b"rc=0")[-1],
          "terminal restored to cooked mode")
    p.wait()
    r = capsem(cli, env, "list", "-q")
    check(len(r.stdout.split()) == 1, "named VM still exists after detach")

    # Guest shell exit ends the session; the named VM is kept.
    p = Pty("'%s' shell dev; echo rc=$?" % cli, env)
    check(p.expect("fake$ "), "re-attach")
    p.send(b"exit 3\r")
    check(p.expect("Detached from dev; still running.") and p.expect("rc=0"),
          "guest shell exit ends the session with 0")
    p.wait()

    # Temporary VM: created with owner_pid, deleted at the end.
    p = Pty("'%s' shell; echo rc=$?" % cli, env)
    check(p.expect("fake$ "), "temporary VM shell")
    p.send(b"echo $CAPSEM_VM_NAME\r")
    check(p.expect("code-"), "temporary VM has a generated name")
    p.send(b"exit\r")
    check(p.expect("rc=0"), "temporary shell exits 0")
    p.wait()
    r = capsem(cli, env, "list", "-q")
    check(len(r.stdout.split()) == 1, "temporary VM deleted after the session")
    with open(log) as f:
        check('"owner_pid"' in f.read(), "temporary VM created with owner_pid")

    # SIGTERM while attached: terminal restored, exit 143, VM deleted.
    p = Pty("'%s' shell </dev/tty & pid=$!; sleep 1.5; kill $pid; wait $pid; echo rc=$?; stty -a" % cli,
            env)
    check(p.expect("rc=143"), "SIGTERM ends the session with 143")
    check(p.expect("icanon") and b"-icanon" not in p.out.split(b"rc=143")[-1],
          "terminal restored after SIGTERM")
    p.wait()
    r = capsem(cli, env, "list", "-q")
    check(len(r.stdout.split()) == 1, "temporary VM deleted after SIGTERM")

    # No terminal.
    r = subprocess.run([cli, "shell", "dev"], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    check(r.returncode == 1 and r.stderr == "Error: shell needs a terminal\n",
          "shell without a terminal is refused")
    r = capsem(cli, env, "shell", "nope")
    check(r.returncode == 1, "shell of an unknown VM fails")

    # run progress goes to a terminal's stderr only.
    p = Pty("'%s' run -- echo hi 2>/dev/null; echo rc=$?" % cli, env)
    check(p.expect("rc=0") and b"Starting VM" not in p.out, "no progress when stderr is piped")
    p.wait()
    p = Pty("'%s' run -- echo hi; echo rc=$?" % cli, env)
    check(p.expect("rc=0") and b"Starting VM..." in p.out, "progress on a terminal's stderr")
    p.wait()
    r = capsem(cli, env, "delete", "dev")
    check(r.returncode == 0 and r.stdout == "dev\n", "delete dev")


if __name__ == "__main__":
    sys.exit(main())
