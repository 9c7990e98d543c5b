"""capsem shell over a real PTY, driven through tmux."""
import os
import shutil
import subprocess
import time

import pytest

from conftest import BIN_DIR, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


class Tmux:
    def __init__(self, env):
        self.sock = f"capsem-test-{os.getpid()}"
        self.env = env

    def run(self, *args):
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              env=self.env)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "t").stdout

    def alive(self):
        return self.run("has-session", "-t", "t").returncode == 0

    def kill(self):
        self.run("kill-server")


def test_shell_pty_resize_and_exit(capsem, vm):
    tmux = Tmux(capsem.env)
    cmd = f"{BIN_DIR}/capsem shell {vm}; echo SHELL-EXIT=$?; sleep 30"
    tmux.run("new-session", "-d", "-s", "t", "-x", "120", "-y", "40", cmd)
    try:
        wait_for(lambda: "#" in tmux.screen(), 60, "a shell prompt")
        tmux.run("send-keys", "-t", "t", "echo $((6*7)) && tty", "Enter")
        wait_for(lambda: "42" in tmux.screen() and "/dev/pts/" in tmux.screen(), 30,
                 "command output")
        tmux.run("send-keys", "-t", "t", "stty size", "Enter")
        wait_for(lambda: "40 120" in tmux.screen(), 30, "the initial window size")
        tmux.run("resize-window", "-t", "t", "-x", "100", "-y", "30")
        time.sleep(0.2)
        tmux.run("send-keys", "-t", "t", "clear; stty size", "Enter")
        wait_for(lambda: "30 100" in tmux.screen(), 30, "the new window size")
        tmux.run("send-keys", "-t", "t", "exit", "Enter")
        wait_for(lambda: "SHELL-EXIT=0" in tmux.screen(), 30, "the CLI to exit")
    finally:
        tmux.kill()
    # The named-less attach to an existing VM leaves it running.
    assert capsem.api("GET", f"/vms/{vm}/info").json["status"] == "Running"


def test_temporary_shell_vm_is_deleted(capsem):
    tmux = Tmux(capsem.env)
    before = {v["id"] for v in capsem.vms()}
    cmd = f"{BIN_DIR}/capsem shell --profile minimal --ram 512M; echo SHELL-EXIT=$?; sleep 30"
    tmux.run("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", cmd)
    try:
        wait_for(lambda: "#" in tmux.screen(), 90, "a shell prompt")
        new = [v for v in capsem.vms() if v["id"] not in before]
        assert len(new) == 1 and new[0]["persistent"] is False
        tmux.run("send-keys", "-t", "t", "exit", "Enter")
        wait_for(lambda: "SHELL-EXIT=0" in tmux.screen(), 30, "the CLI to exit")
        wait_for(lambda: {v["id"] for v in capsem.vms()} == before, 30, "the temporary VM to go")
    finally:
        tmux.kill()
