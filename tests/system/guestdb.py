"""Helpers shared by the network system tests: host-held credentials, run a
command in a VM, read rows from its session.db (read-only, while
capsem-process writes)."""
import os
import sqlite3

from conftest import wait_for


def write_credentials(home, **secrets):
    """$CAPSEM_HOME/credentials.toml (0600) holding the given provider
    secrets; returns its path."""
    path = os.path.join(home, "credentials.toml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("schema = 1\n[secrets]\n" + "".join(f'{p} = "{v}"\n' for p, v in secrets.items()))
    return path


def sh(capsem, vm, cmd, timeout_secs=90):
    return capsem.exec(vm, cmd, timeout_secs=timeout_secs)


def rows(capsem, vm, sql, args=()):
    db = os.path.join(capsem.home, "run", "sessions", vm, "session.db")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def wait_rows(capsem, vm, sql, args=(), what="rows", count=1, timeout=15):
    """Polls until the query returns at least `count` rows (the writer
    commits in batches every 100 ms)."""
    def enough():
        r = rows(capsem, vm, sql, args)
        return r if len(r) >= count else None
    return wait_for(enough, timeout, what, interval=0.2)
