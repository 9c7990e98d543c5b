#!/usr/bin/env python3
"""Capsem benchmarks: every number that matters printed as a ratio against a
baseline measured in the same run (no stored baselines).

  1. boot: bare QEMU boot-to-init of the same kernel and initrd (the kernel is
     pointed at an init that does not exist, so it panics and QEMU exits the
     moment it would run init) vs our create-to-first-exec through the API.
  2. exec round trip of `true` over one keep-alive API connection, p50/p99.
  3. 64 MiB file transfer through the guest channel (IPC straight to the VM's
     capsem-process, so the service's 10 MiB API cap does not apply).
  4. network (bench_net.py; about 2 minutes on its own, so not in the default
     run: --net or --all):
     HTTPS requests/s and p50/p99 from a guest through the MITM proxy vs the
     same upstream straight from the host, plus a large download.

Environment: CAPSEM_TEST_BIN_DIR, CAPSEM_TEST_ASSETS (set by `make bench`).
Options: --rounds N (boot rounds, default 5), --execs N (default 200),
--net (only the network bench), --all (the default benches, then the network
bench), --net-duration S, --net-mib N (passed to bench_net.py).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "system"))
from conftest import Capsem, UnixHTTPConnection, install_assets, sock_path, wait_for  # noqa: E402
import bench_net  # noqa: E402

BIN_DIR = os.environ["CAPSEM_TEST_BIN_DIR"]


def ipc_call(sock_path, msg, blobs=(), timeout=600):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock_path)
    msg = dict(msg, id=1)
    if blobs:
        msg["blobs"] = [len(b) for b in blobs]
    js = json.dumps(msg).encode()
    tail = b"".join(blobs)
    s.sendall(struct.pack(">II", 4 + len(js) + len(tail), len(js)) + js + tail)
    buf = bytearray()
    while True:
        while len(buf) < 8:
            buf += s.recv(1 << 20)
        total, jl = struct.unpack(">II", buf[:8])
        while len(buf) < 4 + total:
            chunk = s.recv(1 << 22)
            if not chunk:
                raise EOFError("instance socket closed")
            buf += chunk
        j = json.loads(buf[8:8 + jl])
        tail = bytes(buf[8 + jl:4 + total])
        del buf[:4 + total]
        if j.get("id") == 1:
            s.close()
            out, off = [], 0
            for n in j.get("blobs", []):
                out.append(tail[off:off + n])
                off += n
            return j, out


def percentile(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def vm_log(capsem, vm_id, prefix):
    path = os.path.join(capsem.home, "run", "sessions", vm_id, "process.log")
    for line in open(path):
        if prefix in line:
            return line.split(prefix, 1)[1].strip()
    raise RuntimeError(f"{prefix!r} not in {path}")


def bare_boot(qemu, accel, kernel, initrd, cmdline, ram, cpus):
    cmd = [qemu, "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on,pit=on",
           "-accel", accel, "-cpu", "host" if accel == "kvm" else "max", "-m", str(ram),
           "-smp", str(cpus), "-nodefaults", "-no-user-config", "-display", "none",
           "-no-reboot", "-kernel", kernel, "-initrd", initrd,
           "-append", cmdline.replace("rdinit=/init", "rdinit=/capsem-bench-no-init"),
           "-serial", "null"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"bare boot failed: {p.returncode}")
    return dt


def create_to_first_exec(capsem, profile, ram, cpus):
    t0 = time.monotonic()
    vm = capsem.create(profile_id=profile, ram_mb=ram, cpus=cpus)
    r = capsem.exec(vm["id"], "true")
    dt = time.monotonic() - t0
    assert r["exit_code"] == 0
    return dt, vm["id"]


def bare_setup(capsem, ram, cpus):
    """Kernel, initrd and kernel command line exactly as a VM of ours gets them."""
    vm = capsem.create(profile_id="minimal", ram_mb=ram, cpus=cpus)
    capsem.exec(vm["id"], "true")
    cmdline = vm_log(capsem, vm["id"], "kernel cmdline: ")
    accel = capsem.api("GET", f"/vms/{vm['id']}/info").json["accel"]
    capsem.delete(vm["id"])
    manifest = json.load(open(os.path.join(capsem.home, "assets", "manifest.json")))
    vdir = os.path.join(capsem.home, "assets", "v" + manifest["current"])
    return accel, os.path.join(vdir, "vmlinux"), os.path.join(vdir, "initrd.img"), cmdline


def bench_boot(capsem, rounds, ram, cpus, profiles):
    """Interleaved: bare boot, then ours for each profile, per round."""
    accel, kernel, initrd, cmdline = bare_setup(capsem, ram, cpus)
    bare, ours = [], {p: [] for p in profiles}
    for _ in range(rounds):
        bare.append(bare_boot("qemu-system-x86_64", accel, kernel, initrd, cmdline, ram, cpus))
        for profile in profiles:
            dt, vm_id = create_to_first_exec(capsem, profile, ram, cpus)
            ours[profile].append(dt)
            capsem.delete(vm_id)
    return accel, bare, ours


def templates_ready(capsem, n):
    root = os.path.join(capsem.home, "cache", "boot-templates")
    names = os.listdir(root) if os.path.isdir(root) else []
    return len([d for d in names if not d.startswith(".")]) >= n


def bench_exec(capsem, n, ram, cpus):
    vm = capsem.create(profile_id="minimal", ram_mb=ram, cpus=cpus)
    capsem.exec(vm["id"], "true")
    conn = UnixHTTPConnection(capsem.sock, 60)
    body = json.dumps({"command": "true"})
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        conn.request("POST", f"/vms/{vm['id']}/exec", body=body)
        r = conn.getresponse()
        data = r.read()
        times.append((time.monotonic() - t0) * 1000)
        assert r.status == 200 and json.loads(data)["exit_code"] == 0
    conn.close()
    guest = capsem.exec(vm["id"], "t0=${EPOCHREALTIME/./}; for i in $(seq 20); do bash -c true; done;"
                                  " t1=${EPOCHREALTIME/./}; echo $(( (t1 - t0) / 20000 ))")
    capsem.delete(vm["id"])
    return times, int(guest["stdout"].strip())


def bench_transfer(capsem, ram, cpus, size=64 << 20):
    vm = capsem.create(profile_id="minimal", ram_mb=ram, cpus=cpus)
    capsem.exec(vm["id"], "true")
    sock = sock_path(os.path.join(capsem.home, "run", "instances", vm["id"] + ".sock"))
    data = os.urandom(size)
    t0 = time.monotonic()
    r, _ = ipc_call(sock, {"op": "file_write", "path": "/root/big.bin", "confine": True,
                           "mode": 0o644, "max_bytes": size * 2}, [data])
    up = time.monotonic() - t0
    assert r["ok"] and r["size"] == size, r
    t0 = time.monotonic()
    r, blobs = ipc_call(sock, {"op": "file_read", "path": "/root/big.bin", "confine": True,
                               "max_bytes": size * 2})
    down = time.monotonic() - t0
    assert r["ok"] and blobs[0] == data
    capsem.delete(vm["id"])
    return up, down


def bench_lifecycle(capsem, ram, cpus, rounds):
    """Fork, suspend/resume and create-from-image, each against its baseline."""
    name = f"bench-{os.getpid()}"
    vm = capsem.create(name=name, profile_id="minimal", ram_mb=ram, cpus=cpus)
    capsem.exec(name, "head -c 50000000 /dev/urandom > /root/blob; mkdir -p /opt/x;"
                      " head -c 20000000 /dev/urandom > /opt/x/blob; sync")
    vmdir = os.path.join(capsem.home, "run", "persistent", vm["id"])
    allocated = sum(os.stat(os.path.join(vmdir, f)).st_blocks * 512
                    for f in ("overlay.img", "workspace.img"))
    t0 = time.monotonic()
    r = capsem.api("POST", f"/vms/{name}/fork", {"name": name + "-img"})
    fork_s = time.monotonic() - t0
    assert r.status == 200, r
    image_bytes = r.json["size_bytes"]
    suspend, resume = [], []
    for _ in range(rounds):
        t0 = time.monotonic()
        assert capsem.api("POST", f"/vms/{name}/pause").status == 200
        suspend.append(time.monotonic() - t0)
        t0 = time.monotonic()
        assert capsem.api("POST", f"/vms/{name}/resume").status == 200
        capsem.exec(name, "true")
        resume.append(time.monotonic() - t0)
    ckpt_note = ""
    plain, from_image = [], []
    for _ in range(rounds):
        dt, vid = create_to_first_exec(capsem, "minimal", ram, cpus)
        plain.append(dt)
        capsem.delete(vid)
        t0 = time.monotonic()
        child = capsem.create(image=name + "-img", ram_mb=ram, cpus=cpus)
        capsem.exec(child["id"], "true")
        from_image.append(time.monotonic() - t0)
        capsem.delete(child["id"])
    capsem.delete(name)
    capsem.api("DELETE", f"/images/{name}-img/delete")
    return {"fork_s": fork_s, "image_bytes": image_bytes, "allocated": allocated,
            "suspend": suspend, "resume": resume, "plain": plain, "from_image": from_image,
            "note": ckpt_note}


def machine():
    model = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cpus ({model}), {platform.release()}"


def start_service(home, templates):
    capsem = Capsem(home)
    if not templates:
        capsem.env["CAPSEM_BOOT_TEMPLATES"] = "0"
    log = open(os.path.join(home, "service.log"), "ab")
    svc = subprocess.Popen([os.path.join(BIN_DIR, "capsem-service")], env=capsem.env,
                           stdout=log, stderr=log, start_new_session=True)
    wait_for(lambda: os.path.exists(capsem.sock) and
             capsem.api("GET", "/version").status == 200, 60, "the service")
    return capsem, svc, log


def stop_service(capsem, svc, log):
    for v in capsem.vms() if svc.poll() is None else []:
        capsem.delete(v["id"])
    svc.send_signal(signal.SIGTERM)
    svc.wait(30)
    log.close()


def report_boot(label, bare, ours):
    b = statistics.median(bare)
    print(f"bare QEMU boot-to-init (same kernel+initrd):      {b * 1000:7.0f} ms")
    for profile, xs in ours.items():
        m = statistics.median(xs)
        print(f"create-to-first-exec, {profile:7s}, {label:13s}   {m * 1000:7.0f} ms"
              f"   ratio {m / b:.2f}x")
    return b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--execs", type=int, default=200)
    ap.add_argument("--ram", type=int, default=512)
    ap.add_argument("--cpus", type=int, default=2)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--net", action="store_true", help="only the network bench")
    which.add_argument("--all", action="store_true",
                       help="the default benches, then the network one")
    ap.add_argument("--net-duration", type=float, default=5.0, help="measured seconds per net row")
    ap.add_argument("--net-mib", type=int, default=256, help="size of the net bench's download")
    args = ap.parse_args()
    net_args = bench_net.parse(["bench", "--duration", str(args.net_duration),
                                "--mib", str(args.net_mib)])
    if args.net:
        print(f"# capsem network bench, {datetime.date.today()}, {machine()}")
        bench_net.standalone(net_args)
        return
    home = tempfile.mkdtemp(prefix="capsem-bench-")
    install_assets(home)
    profiles = ["minimal", "code"]
    print(f"# capsem bench, {datetime.date.today()}, {machine()}")
    try:
        capsem, svc, log = start_service(home, templates=False)
        try:
            accel, bare, cold = bench_boot(capsem, args.rounds, args.ram, args.cpus, profiles)
        finally:
            stop_service(capsem, svc, log)
        print(f"accel: {accel}; VMs: {args.cpus} vCPU, {args.ram} MiB; medians of {args.rounds}")
        b = report_boot("cold boot", bare, cold)
        capsem, svc, log = start_service(home, templates=True)
        try:
            for i, profile in enumerate(profiles):  # first VM of each: cold, then a template
                dt, vm_id = create_to_first_exec(capsem, profile, args.ram, args.cpus)
                capsem.delete(vm_id)
                wait_for(lambda: templates_ready(capsem, i + 1), 120, "a boot template")
            _, bare2, warm = bench_boot(capsem, args.rounds, args.ram, args.cpus, profiles)
            report_boot("boot template", bare2, warm)
            run_body(capsem, args, b)
        finally:
            stop_service(capsem, svc, log)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if args.all:
        print("# network")
        bench_net.standalone(net_args)


def run_body(capsem, args, b):
    times, guest_bash = bench_exec(capsem, args.execs, args.ram, args.cpus)
    print(f"exec round trip of `true` ({args.execs}x, one keep-alive connection): "
          f"p50 {percentile(times, 50):.1f} ms, p99 {percentile(times, 99):.1f} ms"
          f"  (bash -c true alone inside the guest: {guest_bash} ms)")
    up, down = bench_transfer(capsem, args.ram, args.cpus)
    print(f"64 MiB transfer through the channel: upload {64 / up:.1f} MiB/s, "
          f"download {64 / down:.1f} MiB/s")
    lc = bench_lifecycle(capsem, args.ram, args.cpus, args.rounds)
    mib = 1024 * 1024
    print(f"fork of a running VM with 70 MB written: {lc['fork_s'] * 1000:.0f} ms; image "
          f"{lc['image_bytes'] / mib:.1f} MiB allocated vs the VM's disks "
          f"{lc['allocated'] / mib:.1f} MiB allocated "
          f"(ratio {lc['image_bytes'] / lc['allocated']:.2f}; apparent size 2x16 GiB)")
    sm, rm = statistics.median(lc["suspend"]), statistics.median(lc["resume"])
    print(f"suspend with memory: {sm * 1000:.0f} ms; resume to first exec: {rm * 1000:.0f} ms"
          f"   (resume vs bare boot ratio {rm / b:.2f}x)")
    pm, im = statistics.median(lc["plain"]), statistics.median(lc["from_image"])
    print(f"create-from-image to first exec: {im * 1000:.0f} ms vs plain create "
          f"{pm * 1000:.0f} ms   ratio {im / pm:.2f}x")


if __name__ == "__main__":
    main()
