"""Exec semantics (surface.md section 5.1) against a real VM under QEMU."""
import threading

import pytest


@pytest.mark.fast
def test_stdout_stderr_exit_code_kept_apart(capsem, vm):
    r = capsem.exec(vm, "echo out; echo err >&2; printf 'no newline'; exit 3")
    assert r["stdout"] == "out\nno newline"
    assert r["stderr"] == "err\n"
    assert r["exit_code"] == 3
    assert r["timed_out"] is False
    assert r["truncated"] is False
    assert isinstance(r["duration_ms"], int) and r["duration_ms"] >= 0


@pytest.mark.fast
def test_runs_bash_in_root_with_environment(capsem, vm):
    r = capsem.exec(vm, 'echo "$0|$PWD|$HOME|$TERM|$LANG"; echo "$CAPSEM_VM_ID"; [ -t 0 ] || echo notty')
    lines = r["stdout"].splitlines()
    assert lines[0] == "bash|/root|/root|dumb|C.UTF-8"
    assert lines[1] == vm
    assert lines[2] == "notty"


@pytest.mark.fast
def test_signal_exit_code(capsem, vm):
    r = capsem.exec(vm, "kill -TERM $$")
    assert r["exit_code"] == 128 + 15


def test_timeout_kills_the_process_group(capsem, vm):
    r = capsem.exec(vm, "echo started; sleep 100 & sleep 100", timeout_secs=2)
    assert r["exit_code"] == 124
    assert r["timed_out"] is True
    assert r["stdout"] == "started\n"
    left = capsem.exec(vm, "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$' || true")
    assert left["stdout"].strip() == "0"


def test_background_process_survives_exec(capsem, vm):
    r = capsem.exec(vm, "(sleep 30 &) ; echo launched")
    assert r["stdout"] == "launched\n"
    assert r["exit_code"] == 0
    left = capsem.exec(vm, "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$' || true")
    assert left["stdout"].strip() == "1"
    capsem.exec(vm, "kill $(grep -l '^sleep$' /proc/[0-9]*/comm | cut -d/ -f3)")


def test_concurrent_execs_on_one_vm(capsem, vm):
    """A waits for a file only B creates: if execs were serialised, A would time out."""
    capsem.exec(vm, "rm -f /tmp/rendezvous")
    results = {}

    def waiter():
        results["a"] = capsem.exec(
            vm, "for i in $(seq 1 300); do [ -f /tmp/rendezvous ] && break; sleep 0.1; done;"
                " [ -f /tmp/rendezvous ] && echo a-done", timeout_secs=60)

    t = threading.Thread(target=waiter)
    t.start()
    others = [threading.Thread(target=lambda i=i: results.__setitem__(
        i, capsem.exec(vm, f"echo {i}"))) for i in range(4)]
    for o in others:
        o.start()
    b = capsem.exec(vm, "sleep 1; touch /tmp/rendezvous; echo b-done")
    t.join(120)
    for o in others:
        o.join(120)
    assert b["stdout"] == "b-done\n"
    assert results["a"]["stdout"] == "a-done\n"
    assert results["a"]["exit_code"] == 0
    assert [results[i]["stdout"] for i in range(4)] == [f"{i}\n" for i in range(4)]


def test_output_cap_truncates_and_keeps_running(capsem, vm):
    cap = 10 * 1024 * 1024
    r = capsem.exec(vm, f"head -c {cap + 4096} /dev/zero | tr '\\0' x; echo tail >&2")
    assert r["truncated"] is True
    assert len(r["stdout"]) == cap
    assert set(r["stdout"]) == {"x"}
    assert r["stderr"] == "tail\n"
    assert r["exit_code"] == 0


@pytest.mark.fast
def test_non_utf8_output_is_replaced(capsem, vm):
    r = capsem.exec(vm, "printf 'a\\377b'")
    assert r["stdout"] == "a\ufffdb"


@pytest.mark.fast
def test_exec_errors(capsem, vm):
    assert capsem.api("POST", f"/vms/{vm}/exec", {"command": ""}).status == 400
    assert capsem.api("POST", f"/vms/{vm}/exec", {"command": "true", "timeout_secs": 0}).status == 400
    r = capsem.api("POST", "/vms/nope/exec", {"command": "true"})
    assert r.status == 404 and r.json == {"error": "VM not found: nope"}
    r = capsem.api("POST", "/vms/a..b/exec", {"command": "true"})
    assert r.status == 400 and r.json["error"].startswith("invalid VM reference")
    r = capsem.api("POST", f"/vms/{vm}/exec", raw=b"{not json")
    assert r.status == 400 and "malformed JSON" in r.json["error"]
    assert capsem.api("GET", f"/vms/{vm}/exec").status == 405
    assert capsem.api("GET", "/no/such/route").status == 404
