#!/usr/bin/env python3
"""Network bench: the air gap's HTTPS path (guest -> relay -> channel ->
capsem-process MITM proxy -> upstream) against the same upstream reached
directly from the host, all measured in one run, printed as ratios.

  1. Requests per second and p50/p99 latency at concurrency 1, 10 and 50:
     one load generator (this file, `load` mode: asyncio, keep-alive
     connections, N workers, fixed duration after a warm-up, every request's
     latency recorded) runs unchanged
       - inside a `code`-profile guest against https://bench.test through the
         proxy, verifying with the capsem CA the guest trusts;
       - on the host straight against the stand-in, verifying with the
         stand-in's own throwaway CA;
       - inside the guest against a copy of the stand-in on the guest's own
         127.0.0.1 (the "guest loopback baseline": no proxy, only the
         emulated CPU), so emulation cost and proxy cost can be told apart.
  2. Throughput of one large download (default 256 MiB) over the same three
     paths (`download` mode: one blocking TLS socket, bytes discarded).

The upstream is this file's `serve` mode: an asyncio TLS server in its own
process (keep-alive, a fixed small body, /big?mib=N streamed from a random
1 MiB block). The stand-in in tests/system/upstream.py is not used: over
keep-alive it takes 44 ms per request (headers and body leave in separate
writes; Nagle waits for the client's delayed ACK). CPU used by each process
(client, upstream, QEMU, capsem-process) is printed with every row so the
bottleneck is visible; a process at ~1.0 core is single-thread bound.

Environment: CAPSEM_TEST_BIN_DIR, CAPSEM_TEST_ASSETS (as bench/run.py).
Run: python3 bench/bench_net.py [--duration S] [--mib N] [--conc 1,10,50]
or:  python3 bench/run.py --net (network only) / --all (everything).
"""
import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time

NAME = "bench.test"
SMALL_BODY = b"hello from the capsem bench\n"
CHUNK = 1 << 20


# ---------- the HTTPS stand-in (host upstream; also the guest loopback server) ----------

def _response(status, body_len, ctype=b"text/plain"):
    return (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            % (status, b"OK" if status == 200 else b"Not Found", ctype, body_len))


SMALL_RESPONSE = _response(200, len(SMALL_BODY)) + SMALL_BODY


class StandIn(asyncio.Protocol):
    """HTTP/1.1 keep-alive on one TLS connection. GET /big?mib=N streams N
    MiB honouring transport flow control; any other path gets SMALL_BODY.
    Request bodies are not expected (the generator only sends GETs)."""

    block = b""

    def connection_made(self, transport):
        self.t = transport
        self.buf = b""
        self.big_left = 0
        self.paused = False

    def data_received(self, data):
        self.buf += data
        while self.big_left == 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.t.close()
                return
            line = self.buf[:end].split(b"\r\n", 1)[0].split(b" ")
            self.buf = self.buf[end + 4:]
            path = line[1] if len(line) > 1 else b"/"
            if path.startswith(b"/big?mib="):
                try:
                    mib = int(path[9:])
                except ValueError:
                    mib = -1
                if not 0 < mib <= 65536:
                    self.t.write(_response(404, 0))
                    continue
                self.t.write(_response(200, mib * CHUNK, b"application/octet-stream"))
                self.big_left = mib
                self.pump()
            else:
                self.t.write(SMALL_RESPONSE)

    def pump(self):
        while self.big_left > 0 and not self.paused:
            self.big_left -= 1
            self.t.write(self.block)
        if self.big_left == 0 and self.buf:
            self.data_received(b"")

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        self.pump()

    def connection_lost(self, exc):
        self.big_left = 0


def serve(args):
    StandIn.block = os.urandom(CHUNK)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)

    async def run():
        server = await asyncio.get_running_loop().create_server(
            StandIn, args.host, args.port, ssl=ctx, backlog=512, reuse_address=True)
        print("port", server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()
    asyncio.run(run())


# ---------- the load generator (the same code on the host and in the guest) ----------

def client_context(cafile):
    """'system' = the default trust store (in the guest: the bundle with the
    capsem CA); otherwise only the given CA. Verification is always on."""
    if cafile == "system":
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=cafile)


def split_target(target):
    host, _, port = target.rpartition(":")
    return host, int(port)


async def read_response(reader):
    """One response; returns the status. Content-Length or chunked bodies."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        await reader.readexactly(size + 2)
        if size == 0:
            return status


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def load_async(args):
    host, port = split_target(args.connect)
    ctx = client_context(args.cafile)
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.sni}\r\n"
               "User-Agent: capsem-bench\r\n\r\n").encode()
    t_connect = time.perf_counter()
    conns = await asyncio.gather(*[
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=args.sni,
                                ssl_handshake_timeout=120)
        for _ in range(args.conc)])
    connect_s = time.perf_counter() - t_connect
    latencies, errors, done = [], [], [0]
    start = time.perf_counter()
    warm_end = start + args.warmup
    stop = warm_end + args.duration
    cpu0 = [None]

    async def worker(reader, writer):
        while True:
            t0 = time.perf_counter()
            if t0 >= stop:
                break
            if cpu0[0] is None and t0 >= warm_end:
                cpu0[0] = time.process_time()
            writer.write(request)
            try:
                status = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                errors.append(f"{type(e).__name__}: {e}")
                break
            t1 = time.perf_counter()
            done[0] += 1
            if status != 200:
                errors.append(f"status {status}")
            elif t0 >= warm_end:
                latencies.append(t1 - t0)
        writer.close()

    await asyncio.gather(*[worker(r, w) for r, w in conns])
    end = time.perf_counter()
    cpu_s = time.process_time() - (cpu0[0] if cpu0[0] is not None else time.process_time())
    elapsed = end - warm_end
    return {"conc": args.conc, "n": len(latencies), "n_total": done[0], "errors": len(errors),
            "first_error": errors[0] if errors else None, "elapsed_s": elapsed,
            "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "connect_s": connect_s, "client_cpu": cpu_s / elapsed if elapsed > 0 else 0.0}


def load(args):
    print(json.dumps(asyncio.run(load_async(args))), flush=True)


def download(args):
    """One GET /big?mib=N over a blocking TLS socket; the body is discarded."""
    host, port = split_target(args.connect)
    ctx = client_context(args.cafile)
    want = args.mib * CHUNK
    sock = socket.create_connection((host, port), timeout=120)
    tls = ctx.wrap_socket(sock, server_hostname=args.sni)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    t0, cpu0 = time.perf_counter(), time.process_time()
    tls.sendall(f"GET /big?mib={args.mib} HTTP/1.1\r\nHost: {args.sni}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        n = tls.recv_into(buf)
        if n == 0:
            raise SystemExit("connection closed before the response head")
        head += bytes(view[:n])
    head, _, rest = head.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        raise SystemExit(f"unexpected response: {head[:200]!r}")
    got = len(rest)
    while got < want:
        n = tls.recv_into(buf)
        if n == 0:
            break
        got += n
    secs = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    tls.close()
    print(json.dumps({"bytes": got, "complete": got == want, "secs": secs,
                      "mib_s": got / CHUNK / secs, "client_cpu": cpu / secs}), flush=True)


# ---------- orchestration (host only) ----------

def cpu_seconds(procs):
    """Summed user+system CPU seconds of psutil processes (gone ones count 0)."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except Exception:  # psutil.NoSuchProcess
            pass
    return total


class Meter:
    """CPU cores used by named processes over a measured interval."""

    def __init__(self, procs):
        self.procs = procs  # name -> [psutil.Process]

    def start(self):
        self.t0 = time.monotonic()
        self.c0 = {k: cpu_seconds(v) for k, v in self.procs.items()}

    def stop(self):
        """Returns {cpu: cores used, cpu_s: CPU seconds} per name, wall_s."""
        dt = time.monotonic() - self.t0
        secs = {k: cpu_seconds(v) - self.c0[k] for k, v in self.procs.items()}
        return {"cpu": {k: v / dt for k, v in secs.items()}, "cpu_s": secs, "wall_s": dt}


class NetBench:
    def __init__(self, args, home):
        import psutil  # imported here: the guest has no psutil
        self.args = args
        self.home = home
        self.psutil = psutil
        self.script = os.path.abspath(__file__)
        self.cadir = os.path.join(home, "bench-ca")
        self.upstream = None

    # -- host side --

    def start_upstream(self):
        from upstream import make_ca  # tests/system: the same throwaway-CA recipe as the tests
        os.makedirs(self.cadir)
        self.ca, self.crt, self.key = make_ca(self.cadir, [NAME])
        self.upstream = subprocess.Popen([sys.executable, self.script, "serve", "--cert",
                                          self.crt, "--key", self.key, "--port", "0"],
                                         stdout=subprocess.PIPE, text=True,
                                         start_new_session=True)
        line = self.upstream.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            raise RuntimeError(f"the stand-in did not start: {line!r}")
        self.port = int(line[1])

    def policy_text(self):
        return ("schema = 1\n"
                f'rule = [ {{ id = "bench-allow", action = "allow", host = "{NAME}" }} ]\n'
                "[network]\n"
                f'upstream_override = [ {{ target = "{NAME}:443", dial = "127.0.0.1:{self.port}",'
                f' ca_file = "{self.ca}" }} ]\n')

    def host_cmd(self, mode, extra):
        return [sys.executable, self.script, mode, "--connect", f"127.0.0.1:{self.port}",
                "--sni", NAME, "--cafile", self.ca, *extra]

    def stop_upstream(self):
        if self.upstream:
            self.upstream.terminate()
            self.upstream.wait(10)

    def run_host(self, mode, extra, meter):
        meter.start()
        p = subprocess.run(self.host_cmd(mode, extra), capture_output=True, text=True,
                           timeout=600)
        used = meter.stop()
        if p.returncode != 0:
            raise RuntimeError(f"host {mode} failed: {p.stderr[-2000:]}")
        out = json.loads(p.stdout.strip().splitlines()[-1])
        used["cpu"]["client"] = out["client_cpu"]
        return dict(out, **used)

    # -- guest side --

    def guest_setup(self, capsem, vm):
        """This file and the stand-in's certificate into the guest; the
        loopback stand-in started on the guest's 127.0.0.1:8443."""
        files = {"/root/bench_net.py": self.script, "/root/bench-ca.crt": self.ca,
                 "/root/bench.crt": self.crt, "/root/bench.key": self.key}
        for guest_path, host_path in files.items():
            with open(host_path) as f:
                content = f.read()
            r = capsem.api("POST", f"/vms/{vm}/files/write",
                           {"path": guest_path, "content": content})
            if r.status != 200:
                raise RuntimeError(f"files/write {guest_path}: {r}")
        r = capsem.exec(vm, "nohup python3 /root/bench_net.py serve --cert /root/bench.crt "
                            "--key /root/bench.key --port 8443 > /tmp/standin.log 2>&1 & "
                            "for i in $(seq 300); do grep -q '^port' /tmp/standin.log && break; "
                            "sleep 0.1; done; cat /tmp/standin.log; python3 --version")
        if "port 8443" not in r["stdout"]:
            raise RuntimeError(f"guest stand-in did not start: {r}")
        self.guest_python = r["stdout"].strip().splitlines()[-1]

    def run_guest(self, capsem, vm, mode, via_proxy, extra, meter):
        target = f"{NAME}:443" if via_proxy else "127.0.0.1:8443"
        cafile = "system" if via_proxy else "/root/bench-ca.crt"
        cmd = " ".join(["python3", "/root/bench_net.py", mode, "--connect", target, "--sni", NAME,
                        "--cafile", cafile, *extra])
        meter.start()
        t0 = time.monotonic()
        r = capsem.exec(vm, cmd, timeout_secs=900, timeout=960)
        wall = time.monotonic() - t0
        used = meter.stop()
        if r["exit_code"] != 0:
            raise RuntimeError(f"guest {mode} failed: {r}")
        out = json.loads(r["stdout"].strip().splitlines()[-1])
        timed = out.get("elapsed_s", out.get("secs", 0))
        if timed > wall:  # the guest clock ran fast: its figures cannot be trusted
            out["clock_warning"] = f"guest timed {timed:.1f} s inside a {wall:.1f} s exec"
        used["cpu"]["guest client"] = out["client_cpu"]
        return dict(out, **used)


def our_procs(psutil, home, vm_id):
    """QEMU and capsem-process of one VM (matched by home and VM id in argv)."""
    found = {"qemu": [], "capsem-process": []}
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if home not in cmd or vm_id not in cmd:
            continue
        if "qemu-system" in cmd:
            found["qemu"].append(p)
        elif "capsem-process" in cmd:
            found["capsem-process"].append(p)
    return found


def fmt_cpu(cpu):
    return ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())


def row(label, r):
    err = f"  ERRORS {r['errors']} ({r['first_error']})" if r.get("errors") else ""
    warn = f"  [{r['clock_warning']}]" if r.get("clock_warning") else ""
    return (f"  {label:22s} {r['rps']:8.1f} rps  p50 {r['p50_ms']:8.2f} ms  "
            f"p99 {r['p99_ms']:8.2f} ms  (n={r['n']}; cpu cores: {fmt_cpu(r['cpu'])})"
            f"{err}{warn}")


def bound_note(r, who):
    """Names a single-threaded Python process that used a whole core."""
    busy = [k for k in who if r["cpu"].get(k, 0) >= 0.85]
    return f"  <- {' and '.join(busy)} at ~1 core: bound by it" if busy else ""


def ratio(a, b, key):
    """a[key] / b[key]; NaN when b measured nothing (its row shows the errors)."""
    return a[key] / b[key] if b[key] else float("nan")


def proxy_cpu(proxied, loopback):
    """capsem-process CPU seconds spent on the proxied traffic: its CPU during
    the proxied exec minus its rate during the loopback exec (same exec
    machinery, timers and stats, no proxy traffic) over the same time."""
    idle = loopback["cpu"]["capsem-process"] * proxied["wall_s"]
    return max(proxied["cpu_s"]["capsem-process"] - idle, 0.0)


def proxied_rows(home, vm_id, expect, wait_s=15):
    """net_events rows for the generator's requests (proof they went through
    the proxy); waits for the telemetry writer to catch up."""
    db = os.path.join(home, "run", "sessions", vm_id, "session.db")
    deadline = time.monotonic() + wait_s
    while True:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            n = con.execute("SELECT count(*) FROM net_events WHERE domain = ? AND path = ?",
                            (NAME, "/small")).fetchone()[0]
        finally:
            con.close()
        if n >= expect or time.monotonic() > deadline:
            return n
        time.sleep(0.5)


def run_net(args, capsem, home):
    """Everything, once; prints as it goes."""
    nb = NetBench(args, home)
    nb.start_upstream()
    try:
        with open(os.path.join(home, "policy.toml"), "w") as f:
            f.write(nb.policy_text())
        return measure(nb, args, capsem, home)
    finally:
        nb.stop_upstream()


def measure(nb, args, capsem, home):
    psutil = nb.psutil
    t_total = time.monotonic()
    vm = capsem.create(profile_id="code", ram_mb=args.ram, cpus=args.cpus)
    try:
        accel = capsem.api("GET", f"/vms/{vm['id']}/info").json.get("accel", "?")
        nb.guest_setup(capsem, vm["id"])
        up = [psutil.Process(nb.upstream.pid)]
        vmp = our_procs(psutil, home, vm["id"])
        if not vmp["qemu"] or not vmp["capsem-process"]:
            raise RuntimeError(f"cannot find the VM's processes to meter: {vmp}")
        host_meter = Meter({"upstream": up})
        guest_meter = Meter({"qemu": vmp["qemu"], "capsem-process": vmp["capsem-process"],
                             "upstream": up})
        loop_meter = Meter({"qemu": vmp["qemu"], "capsem-process": vmp["capsem-process"]})
        print(f"load average at the start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus "
              "(other processes share these cpus: cpu figures below show who got what)")
        print(f"accel: {accel}; guest: code profile, {args.cpus} vCPU, {args.ram} MiB, "
              f"{nb.guest_python}; host {sys.version.split()[0]}")
        print(f"upstream: bench_net.py serve (asyncio TLS, own process, keep-alive, "
              f"{len(SMALL_BODY)}-byte body); TLS verified everywhere")
        print(f"requests: GET over keep-alive connections, {args.warmup:g} s warm-up then "
              f"{args.duration:g} s measured per row; cpu = cores used by each process")
        results = {"accel": accel, "rps": {}, "download": {}}
        extra_load = ["--duration", str(args.duration), "--warmup", str(args.warmup),
                      "--path", "/small"]
        for c in args.conc:
            extra = extra_load + ["--conc", str(c)]
            host = nb.run_host("load", extra, host_meter)
            guest = nb.run_guest(capsem, vm["id"], "load", True, extra, guest_meter)
            loop = nb.run_guest(capsem, vm["id"], "load", False, extra, loop_meter)
            results["rps"][c] = {"host": host, "proxy": guest, "loopback": loop}
            print(f"concurrency {c}:")
            print(row("host direct", host) + bound_note(host, ("client", "upstream")))
            print(row("guest via proxy", guest) + "  capsem-process "
                  f"{proxy_cpu(guest, loop) / max(guest['n_total'], 1) * 1e6:.0f} us CPU/request")
            print(row("guest loopback", loop))
            print(f"  ratios: proxy/host rps {ratio(guest, host, 'rps'):.2g}, "
                  f"p50 {ratio(guest, host, 'p50_ms'):.1f}x, "
                  f"p99 {ratio(guest, host, 'p99_ms'):.1f}x; "
                  f"proxy/loopback rps {ratio(guest, loop, 'rps'):.2f}, "
                  f"p50 {ratio(guest, loop, 'p50_ms'):.2f}x")
        extra = ["--mib", str(args.mib)]
        host = nb.run_host("download", extra, host_meter)
        guest = nb.run_guest(capsem, vm["id"], "download", True, extra, guest_meter)
        loop = nb.run_guest(capsem, vm["id"], "download", False, extra, loop_meter)
        results["download"] = {"host": host, "proxy": guest, "loopback": loop}
        print(f"{args.mib} MiB download (one connection, blocking TLS socket):")
        for label, r in (("host direct", host), ("guest via proxy", guest),
                         ("guest loopback", loop)):
            note = "" if r["complete"] else f"  INCOMPLETE ({r['bytes']} bytes)"
            print(f"  {label:22s} {r['mib_s']:8.1f} MiB/s  ({r['secs']:.1f} s; cpu cores: "
                  f"{fmt_cpu(r['cpu'])}){note}")
        print(f"  ratios: proxy/host {ratio(guest, host, 'mib_s'):.2g}, "
              f"proxy/loopback {ratio(guest, loop, 'mib_s'):.2f}; capsem-process "
              f"{proxy_cpu(guest, loop) / args.mib * 1000:.1f} ms CPU/MiB")
        expect = sum(r["proxy"]["n_total"] for r in results["rps"].values())
        logged = proxied_rows(home, vm["id"], expect)
        print(f"proxied /small requests in the VM's session.db net_events: {logged} "
              f"(the generator completed {expect})"
              + ("" if logged >= expect else "  <- MISSING ROWS"))
    finally:
        capsem.delete(vm["id"])
    print(f"network bench took {time.monotonic() - t_total:.0f} s; load average at the end "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    return results


def standalone(args):
    """Own temporary home and service (boot templates off: no hidden VM
    build competes for the CPU), then run_net."""
    from conftest import Capsem, install_assets, wait_for
    home = tempfile.mkdtemp(prefix="capsem-bench-net-")
    os.chmod(home, 0o700)
    install_assets(home)
    capsem = Capsem(home)
    capsem.env["CAPSEM_BOOT_TEMPLATES"] = "0"
    log = open(os.path.join(home, "service.log"), "ab")
    svc = subprocess.Popen([os.path.join(os.environ["CAPSEM_TEST_BIN_DIR"], "capsem-service")],
                           env=capsem.env, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(capsem.sock) and
                 capsem.api("GET", "/version").status == 200, 60, "the service")
        return run_net(args, capsem, home)
    finally:
        for v in capsem.vms() if svc.poll() is None else []:
            capsem.delete(v["id"])
        svc.send_signal(signal.SIGTERM)
        svc.wait(30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def add_bench_args(ap):
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per row")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--conc", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 50])
    ap.add_argument("--mib", type=int, default=256, help="size of the large download")
    ap.add_argument("--ram", type=int, default=1024)
    ap.add_argument("--cpus", type=int, default=2)


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode")
    add_bench_args(sub.add_parser("bench", help="the whole bench (default)"))
    s = sub.add_parser("serve", help="the HTTPS stand-in")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    for name in ("load", "download"):
        g = sub.add_parser(name)
        g.add_argument("--connect", required=True, help="host:port to dial")
        g.add_argument("--sni", required=True, help="TLS server name and Host header")
        g.add_argument("--cafile", required=True, help="CA file, or 'system'")
        if name == "load":
            g.add_argument("--conc", type=int, default=1)
            g.add_argument("--duration", type=float, default=5.0)
            g.add_argument("--warmup", type=float, default=1.0)
            g.add_argument("--path", default="/small")
        else:
            g.add_argument("--mib", type=int, default=256)
    if not argv or argv[0].startswith("-"):
        argv = ["bench", *argv]
    return ap.parse_args(argv)


def main():
    args = parse(sys.argv[1:])
    if args.mode == "serve":
        serve(args)
    elif args.mode == "load":
        load(args)
    elif args.mode == "download":
        download(args)
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "tests", "system"))
        print(f"# capsem network bench, {datetime.date.today()}, {os.cpu_count()} cpus, "
              f"{platform.release()}")
        standalone(args)


if __name__ == "__main__":
    main()
