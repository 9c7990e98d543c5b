#!/usr/bin/env python3
"""Checks the capsem CLI binary against tests/tools/fake_service.py (no VMs):
usage errors and exit codes, create/list/info/exec/run/delete/version output,
byte-exact exec output, auto-start of a (fake) capsem-service, and
`capsem shell` on a pseudo-terminal (prompt and output relayed, window size on
connect and on SIGWINCH, Ctrl-] detaching, guest shell exit, temporary VMs
deleted, the local terminal restored, no terminal refused).

Usage: cli_check.py PATH/TO/capsem
Prints TAP; exits 0 when every check passes.
"""
import fcntl
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


def check(cond, desc):
    results.append(cond)
    print("%s %d - %s" % ("ok" if cond else "not ok", len(results), desc), flush=True)
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


def capsem(cli, env, *args):
    return subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=30)


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
        autostart_checks(cli, tmp)
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
    for cmd in ("run", "create", "exec", "shell", "list", "info", "delete", "version"):
        r = capsem(cli, env, cmd, "--help")
        check(r.returncode == 0 and r.stdout.startswith("Usage: capsem " + cmd) and
              "Examples:" in r.stdout, "%s --help" % cmd)
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


def autostart_checks(cli, tmp):
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    shutil.copy(cli, os.path.join(bindir, "capsem"))
    with open(os.path.join(bindir, "capsem-service"), "w") as f:
        f.write("#!/bin/sh\nexec %s %s --uds-path \"$CAPSEM_HOME/run/service.sock\" "
                "--version 0.0.9\n" % (sys.executable, os.path.join(HERE, "fake_service.py")))
    os.chmod(os.path.join(bindir, "capsem-service"), 0o755)
    home = os.path.join(tmp, "home")
    env = dict(os.environ, CAPSEM_HOME=home)
    env.pop("CAPSEM_UDS_PATH", None)
    env.pop("CAPSEM_RUN_DIR", None)
    cli2 = os.path.join(bindir, "capsem")
    r = capsem(cli2, env, "version")
    check(r.stdout.endswith("capsem-service: not running\n") and
          not os.path.exists(os.path.join(home, "run", "service.sock")),
          "version does not start the service")
    os.makedirs(os.path.join(home, "run"))
    marker = os.path.join(home, "run", "service.explicitly-stopped")
    open(marker, "w").close()
    r = capsem(cli2, env, "list")
    check(r.returncode == 1 and
          r.stderr == "Error: service is stopped; run: capsem service start\n",
          "stop marker prevents auto-start")
    os.unlink(marker)
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
    pids = subprocess.run(["pgrep", "-f", "fake_service.py --uds-path %s/run" % home],
                          capture_output=True, text=True).stdout.split()
    check(len(pids) == 1 and os.getsid(int(pids[0])) == int(pids[0]),
          "exactly one service, in its own session")
    for pid in pids:
        os.kill(int(pid), signal.SIGTERM)


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
