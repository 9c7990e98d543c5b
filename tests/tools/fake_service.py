#!/usr/bin/env python3
"""Fake capsem-service for testing the capsem CLI without VMs.

Serves the service API routes the CLI uses (surface.md section 5) over a
UNIX socket, with the JSON shapes and state rules of sections 3 and 5:
GET /version, GET /status, POST /vms/create, GET /vms/list, POST /run,
/vms/{id}/ info, status, exec, delete, stop, pause, resume (alias start),
save, fork, logs, history, files/content (GET and POST); POST /purge;
GET /images/list, GET /images/{name}/info, DELETE /images/{name}/delete.
"exec" runs the command with /bin/bash -c on this host in the VM's own
workspace directory (its "/root"), so byte-exact output, exit codes,
timeouts and cp round trips can be checked. With --netns the command runs in
new user, mount and network namespaces (`unshare -rnm`) with the VM's
directory mounted on /root, so the "guest" sees only `lo` and its own /root.
Each VM also gets a terminal socket (<id>-ws.sock) speaking WebSocket on
/terminal and relaying to a bash on a host PTY, framed like capsem-process
(binary frames = PTY bytes, text frame {"type":"resize",...}).

Usage: fake_service.py --uds-path PATH [--version V] [--max-output N]
                       [--run-delay SECS] [--exec-delay SECS] [--netns]
                       [--accel kvm|tcg] [--log FILE]
The socket appears once the server is ready; service.pid is written next to
it; SIGTERM stops it (and removes both).
"""
import argparse
import base64
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.vms = []  # oldest first
        self.counter = {}
        self.run_dir = os.path.dirname(os.path.abspath(args.uds_path))
        self.inst_dir = os.path.join(self.run_dir, "instances")
        os.makedirs(self.inst_dir, mode=0o700, exist_ok=True)
        self.term_servers = {}
        self.images = {}  # name -> ImageInfo (without in_use_by)
        self.scratch = tempfile.mkdtemp(prefix="fake-service-")

    def find(self, ref):
        for vm in self.vms:
            if vm["id"] == ref:
                return vm
        for vm in self.vms:
            if vm["name"] == ref:
                return vm
        return None


class HttpError(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status
        self.msg = msg


def check_ref(ref):
    if not ref or "/" in ref or "\\" in ref or ".." in ref or "\0" in ref:
        raise HttpError(400, "invalid VM reference: %s" % ref)


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


ACTIONS = {"Running": ["pause", "stop", "fork", "delete"], "Stopped": ["start", "fork", "delete"],
           "Suspended": ["resume", "fork", "delete"], "Defunct": ["start", "delete"]}


def set_status(vm, status):
    vm["status"] = status
    acts = list(ACTIONS[status])
    if status == "Running" and not vm["persistent"]:
        acts.remove("pause")
    vm["available_actions"] = acts
    vm["pid"] = os.getpid() if status == "Running" else 0
    vm["can_resume"] = status != "Running"
    if status == "Running":
        vm["started"] = time.time()


def provision(vm):
    return {k: vm[k] for k in ("id", "name", "profile_id", "status", "persistent",
                               "can_resume", "available_actions", "uds_path")}


def vm_log(vm, line):
    vm["process_log"] += "%s %s\n" % (now_rfc3339(), line)


def sandbox_info(vm, detailed=False):
    info = {k: vm[k] for k in (
        "id", "name", "profile_id", "status", "persistent", "pid", "cpus", "ram_mb", "image",
        "base_version", "created_at", "last_error", "can_resume", "resume_blocked_reason",
        "available_actions", "uds_path")}
    if vm["status"] == "Running":
        info["uptime_secs"] = int(time.time() - vm["started"]) + vm.get("uptime_offset", 0)
    if detailed:
        info.update(size_bytes=vm.get("size_bytes", 12345678), accel=vm.get("accel", "tcg"),
                    total_requests=0,
                    allowed_requests=0, denied_requests=0, total_tool_calls=0)
    return info


def run_command(state, command, timeout, cwd=None):
    """Runs command like the guest agent would; returns an ExecResponse."""
    if not command:
        raise HttpError(400, "command must not be empty")
    cap = state.args.max_output
    time.sleep(state.args.exec_delay)
    start = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        argv = ["/bin/bash", "-c", command]
        if state.args.netns:  # own network namespace; the VM's directory mounted on /root
            argv = ["unshare", "-rnm", "/bin/bash", "-c",
                    'mount --bind "$1" /root && cd /root && exec /bin/bash -c "$2"',
                    "fake-guest", cwd or scratch, command]
        p = subprocess.Popen(argv, cwd=cwd or scratch, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        timed_out = False
        try:
            out, err = p.communicate(timeout=timeout or 300)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            timed_out = True
    code = 124 if timed_out else (128 - p.returncode if p.returncode < 0 else p.returncode)
    truncated = len(out) > cap or len(err) > cap
    return {"stdout": out[:cap].decode("utf-8", "replace"),
            "stderr": err[:cap].decode("utf-8", "replace"), "exit_code": code,
            "truncated": truncated, "timed_out": timed_out,
            "duration_ms": int((time.time() - start) * 1000)}


def create_vm(state, body):
    name = body.get("name")
    profile = body.get("profile_id", "code")
    if profile not in ("code", "minimal"):
        raise HttpError(400, "unknown profile: %s" % profile)
    cpus = body.get("cpus", 2)
    ram = body.get("ram_mb", 2048)
    if not isinstance(cpus, int) or not 1 <= cpus <= 8:
        raise HttpError(400, "cpus must be between 1 and 8")
    if not isinstance(ram, int) or not 256 <= ram <= 16384:
        raise HttpError(400, "ram_mb must be between 256 and 16384")
    image = body.get("image", body.get("from"))
    with state.lock:
        if image is not None and image not in state.images:
            raise HttpError(404, "image not found: %s" % image)
        if name is not None:
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise HttpError(400, "invalid name: %s" % name)
            if any(v["name"] == name for v in state.vms):
                raise HttpError(409, "name already taken: %s" % name)
        else:
            n = state.counter.get(profile, 0) + 1
            state.counter[profile] = n
            name = "%s-%d" % (profile, n)
        vid = str(uuid.uuid4())
        persistent = bool(body.get("name")) or bool(body.get("persistent"))
        vm = {"id": vid, "name": name, "profile_id": profile, "persistent": persistent,
              "cpus": cpus, "ram_mb": ram, "image": image, "base_version": "2026.11.1",
              "created_at": now_rfc3339(), "last_error": None, "resume_blocked_reason": None,
              "uds_path": os.path.join(state.inst_dir, vid + ".sock"),
              "env": body.get("env", {}), "owner_pid": body.get("owner_pid"),
              "root": os.path.join(state.scratch, vid), "history": [],
              "process_log": "", "serial_log": "[    0.000000] Linux version 6.1 (fake)\n"}
        set_status(vm, "Running")
        os.makedirs(vm["root"])
        vm_log(vm, "capsem-process: VM %s created" % name)
        state.vms.append(vm)
    start_terminal(state, vm)
    return vm


def delete_vm(state, vm):
    with state.lock:
        if vm in state.vms:
            state.vms.remove(vm)
    shutil.rmtree(vm["root"], ignore_errors=True)
    srv = state.term_servers.pop(vm["id"], None)
    if srv:
        srv.shutdown()
        srv.server_close()
        try:
            os.unlink(ws_path(vm))
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------- WebSocket


def ws_path(vm):
    p = vm["uds_path"]
    return (p[:-5] if p.endswith(".sock") else p) + "-ws.sock"


def ws_frame(op, payload):
    head = bytes([0x80 | op])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def ws_read(sock):
    b0, b1 = recv_exact(sock, 2)
    op = b0 & 0x0F
    if not b1 & 0x80:
        raise ValueError("client frame not masked")
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(sock, 8))[0]
    mask = recv_exact(sock, 4)
    data = recv_exact(sock, n)
    return op, bytes(c ^ mask[i % 4] for i, c in enumerate(data))


class TermHandler(socketserver.BaseRequestHandler):
    def handshake(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return False
            head += chunk
        lines = head.split(b"\r\n\r\n")[0].decode().split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, v in
                (line.split(":", 1) for line in lines[1:] if ":" in line)}
        if not lines[0].startswith("GET /terminal ") or \
                hdrs.get("upgrade", "").lower() != "websocket":
            self.request.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1(
            (hdrs["sec-websocket-key"] + WS_GUID).encode()).digest()).decode()
        self.request.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                              % accept).encode())
        return True

    def handle(self):
        if not self.handshake():
            return
        vm = self.server.vm
        env = dict(os.environ, PS1="fake$ ", TERM="xterm-256color", CAPSEM_VM_NAME=vm["name"])
        env.pop("PROMPT_COMMAND", None)
        pid, master = pty.fork()
        if pid == 0:
            os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"], env)
        self.server.log("terminal: shell %d for %s" % (pid, vm["name"]))
        sock = self.request
        try:
            self.relay(sock, master)
        except (BrokenPipeError, ConnectionResetError):
            self.server.log("terminal: client went away")
        finally:
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            os.close(master)

    def relay(self, sock, master):
        while True:
            r, _, _ = select.select([sock, master], [], [])
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:  # guest shell exited: close 1000
                    sock.sendall(ws_frame(0x8, struct.pack("!H", 1000)))
                    return
                sock.sendall(ws_frame(0x2, data))
            if sock in r:
                try:
                    op, payload = ws_read(sock)
                except (EOFError, ConnectionError):
                    return
                if op == 0x2:
                    os.write(master, payload)
                elif op == 0x1:
                    self.on_text(master, payload)
                elif op == 0x9:
                    sock.sendall(ws_frame(0xA, payload))
                elif op == 0x8:
                    self.server.log("terminal: client closed")
                    sock.sendall(ws_frame(0x8, payload[:2]))
                    return

    def on_text(self, master, payload):
        msg = json.loads(payload)
        self.server.log("terminal: text %s" % payload.decode())
        if msg.get("type") == "resize":
            import fcntl
            import termios
            fcntl.ioctl(master, termios.TIOCSWINSZ,
                        struct.pack("HHHH", msg["rows"], msg["cols"], 0, 0))


class TermServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def start_terminal(state, vm):
    path = ws_path(vm)
    srv = TermServer(path, TermHandler)
    srv.vm = vm
    srv.log = state.log
    os.chmod(path, 0o600)
    state.term_servers[vm["id"]] = srv
    threading.Thread(target=srv.serve_forever, daemon=True).start()


# --------------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        self.server.state.log("%s" % (fmt % a))

    def reply(self, status, obj):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        self.server.state.log("body %s" % raw.decode(errors="replace"))
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise HttpError(400, "malformed JSON")

    def dispatch(self, method):
        st = self.server.state
        path, _, query = self.path.partition("?")
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(query,
                                                              keep_blank_values=True).items()}
        routes = {("GET", "/version"): lambda: {"version": st.args.version},
                  ("GET", "/status"): lambda: self.status(),
                  ("GET", "/vms/list"): lambda: {
                      "sandboxes": [sandbox_info(v) for v in st.vms]},
                  ("POST", "/vms/create"): lambda: self.create(),
                  ("POST", "/run"): lambda: self.run(),
                  ("POST", "/purge"): lambda: self.purge(),
                  ("GET", "/images/list"): lambda: {
                      "images": [self.image_info(st.images[n]) for n in sorted(st.images)]}}
        if (method, path) in routes:
            return self.reply(200, routes[(method, path)]())
        if path in {p for _, p in routes}:
            return self.reply(405, None)
        m = re.match(r"^/images/([^/]*)/([a-z]+)$", path)
        if m:
            return self.image_route(method, urllib.parse.unquote(m.group(1)), m.group(2))
        m = re.match(r"^/vms/([^/]*)/([a-z/]+)$", path)
        if not m:
            return self.reply(404, None)
        ref, action = urllib.parse.unquote(m.group(1)), m.group(2)
        allowed = {"info": "GET", "status": "GET", "exec": "POST", "delete": "DELETE",
                   "resume": "POST", "start": "POST", "stop": "POST", "pause": "POST",
                   "save": "POST", "fork": "POST", "logs": "GET", "history": "GET",
                   "files/content": ("GET", "POST")}
        if action not in allowed:
            return self.reply(404, None)
        if method not in allowed[action] or (action != "files/content" and
                                             method != allowed[action]):
            return self.reply(405, None)
        check_ref(ref)
        vm = st.find(ref)
        if not vm:
            raise HttpError(404, "VM not found: %s" % ref)
        if action == "files/content":
            return self.files_get(vm) if method == "GET" else self.files_post(vm)
        if action == "start":
            action = "resume"
        return self.reply(200, getattr(self, "vm_" + action)(vm))

    def handle_any(self, method):
        try:
            self.dispatch(method)
        except HttpError as e:
            self.reply(e.status, {"error": e.msg})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def create(self):
        vm = create_vm(self.server.state, self.body())
        return {k: vm[k] for k in ("id", "name", "profile_id", "status", "persistent",
                                   "can_resume", "available_actions", "uds_path")}

    def run(self):
        st = self.server.state
        body = self.body()
        vm = create_vm(st, {k: v for k, v in body.items() if k != "command"})
        try:
            time.sleep(st.args.run_delay)
            return run_command(st, body.get("command"), body.get("timeout_secs"))
        finally:
            delete_vm(st, vm)

    def vm_info(self, vm):
        return sandbox_info(vm, detailed=True)

    def vm_exec(self, vm):
        if vm["status"] != "Running":
            raise HttpError(409, "cannot exec VM in state %s" % vm["status"])
        body = self.body()
        started = now_rfc3339()
        r = run_command(self.server.state, body.get("command"), body.get("timeout_secs"),
                        cwd=vm["root"])
        vm["history"].append({"timestamp": started, "layer": "exec",
                              "command": body.get("command"), "exit_code": r["exit_code"],
                              "duration_ms": r["duration_ms"],
                              "stdout_preview": r["stdout"][:200],
                              "stderr_preview": r["stderr"][:200]})
        vm_log(vm, "exec: %s -> %d" % (body.get("command"), r["exit_code"]))
        return r

    def vm_delete(self, vm):
        delete_vm(self.server.state, vm)
        return {"success": True}

    def status(self):
        st = self.server.state
        count = {k: sum(1 for v in st.vms if v["status"] == k)
                 for k in ("Running", "Stopped", "Suspended", "Defunct")}
        return {"service": "capsem-service", "version": st.args.version, "ready": True,
                "accel": st.args.accel, "max_concurrent_vms": 10,
                "vms": {"total": len(st.vms), "running": count["Running"],
                        "stopped": count["Stopped"], "suspended": count["Suspended"],
                        "defunct": count["Defunct"]}}

    def vm_status(self, vm):
        info = sandbox_info(vm)
        return {k: info.get(k) for k in ("id", "name", "status", "pid", "persistent",
                                         "uptime_secs", "created_at", "last_error",
                                         "can_resume", "resume_blocked_reason",
                                         "available_actions")}

    def vm_resume(self, vm):
        if vm["status"] != "Running":
            set_status(vm, "Running")
            vm_log(vm, "capsem-process: resumed")
        return provision(vm)

    def vm_stop(self, vm):
        st = self.server.state
        if vm["status"] == "Stopped":
            return {"success": True, "persistent": True}
        if vm["status"] != "Running":
            raise HttpError(409, "cannot stop VM in state %s" % vm["status"])
        if vm["persistent"]:
            set_status(vm, "Stopped")
            vm_log(vm, "capsem-process: stopped")
        else:
            delete_vm(st, vm)
        return {"success": True, "persistent": vm["persistent"]}

    def vm_pause(self, vm):
        if not vm["persistent"]:
            raise HttpError(400, "ephemeral VMs cannot be suspended (persist first)")
        if vm["status"] != "Running":
            raise HttpError(409, "cannot pause VM in state %s" % vm["status"])
        set_status(vm, "Suspended")
        return {"success": True}

    def vm_save(self, vm):
        st = self.server.state
        name = self.body().get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise HttpError(400, "invalid name: %s" % name)
        with st.lock:
            if vm["persistent"]:
                raise HttpError(409, "VM is already persistent")
            if vm["status"] != "Running":
                raise HttpError(409, "cannot save VM in state %s" % vm["status"])
            if any(v["name"] == name for v in st.vms):
                raise HttpError(409, "name already taken: %s" % name)
            vm["name"] = name
            vm["persistent"] = True
            set_status(vm, "Running")
        return {"success": True, "name": name}

    def vm_fork(self, vm):
        st = self.server.state
        body = self.body()
        name = body.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise HttpError(400, "invalid image name: %s" % name)
        with st.lock:
            if name in st.images:
                raise HttpError(409, "image name already taken: %s" % name)
            if vm["status"] == "Defunct":
                raise HttpError(409, "cannot fork VM in state Defunct")
            st.images[name] = {"name": name, "description": body.get("description", ""),
                               "profile_id": vm["profile_id"],
                               "base_version": vm["base_version"], "arch": "x86_64",
                               "size_bytes": 3 * 1024 * 1024, "created_at": now_rfc3339(),
                               "forked_from": vm["name"], "source_vm_id": vm["id"]}
        return {"name": name, "size_bytes": 3 * 1024 * 1024, "base_version": vm["base_version"]}

    def vm_logs(self, vm):
        tail = int(self.query.get("tail", "500"))
        if not 1 <= tail <= 10000:
            raise HttpError(400, "tail must be between 1 and 10000")

        def cut(text):
            lines = text.splitlines(keepends=True)
            return "".join(lines[-tail:])
        serial = cut(vm["serial_log"])
        return {"logs": serial, "serial_logs": serial, "process_logs": cut(vm["process_log"])}

    def vm_history(self, vm):
        q = self.query
        limit, offset = int(q.get("limit", "500")), int(q.get("offset", "0"))
        search, layer = q.get("search", ""), q.get("layer", "all")
        rows = [] if layer == "audit" else [h for h in reversed(vm["history"])
                                            if search in h["command"]]
        return {"commands": rows[offset:offset + limit], "total": len(rows),
                "has_more": offset + limit < len(rows)}

    def workspace_path(self, vm):
        path = self.query.get("path", "")
        rel = path[len("/root"):].lstrip("/") if path == "/root" or \
            path.startswith("/root/") else path
        if path.startswith("/") and not (path == "/root" or path.startswith("/root/")):
            raise HttpError(403, "path escapes the workspace")
        if ".." in rel.split("/"):
            raise HttpError(400, "path must not contain ..")
        return os.path.join(vm["root"], rel), path

    def files_get(self, vm):
        full, path = self.workspace_path(vm)
        if os.path.isdir(full):
            raise HttpError(400, "%s is a directory" % path)
        if not os.path.isfile(full):
            raise HttpError(404, "file not found: %s" % path)
        data = open(full, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition",
                         'attachment; filename="%s"' % os.path.basename(full))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def files_post(self, vm):
        if vm["status"] in ("Suspended", "Defunct"):
            raise HttpError(409, "cannot write files of VM in state %s" % vm["status"])
        full, path = self.workspace_path(vm)
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        if os.path.isdir(full):
            raise HttpError(400, "%s is a directory" % path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        return self.reply(200, {"success": True, "size": len(data)})

    def purge(self):
        st = self.server.state
        purge_all = bool(self.body().get("all", False))
        gone = [v for v in list(st.vms) if purge_all or not v["persistent"]]
        for v in gone:
            delete_vm(st, v)
        p = sum(1 for v in gone if v["persistent"])
        return {"purged": len(gone), "persistent_purged": p, "ephemeral_purged": len(gone) - p}

    def image_info(self, img):
        users = [v["name"] for v in self.server.state.vms if v["image"] == img["name"]]
        return dict(img, in_use_by=users)

    def image_route(self, method, name, action):
        st = self.server.state
        allowed = {"info": "GET", "delete": "DELETE"}
        if action not in allowed:
            return self.reply(404, None)
        if method != allowed[action]:
            return self.reply(405, None)
        img = st.images.get(name)
        if not img:
            raise HttpError(404, "image not found: %s" % name)
        if action == "info":
            return self.reply(200, self.image_info(img))
        users = self.image_info(img)["in_use_by"]
        if users:
            raise HttpError(409, "image in use by: %s" % ", ".join(users))
        del st.images[name]
        return self.reply(200, {"success": True})


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uds-path", required=True)
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--max-output", type=int, default=10 * 1024 * 1024)
    ap.add_argument("--run-delay", type=float, default=0.0)
    ap.add_argument("--exec-delay", type=float, default=0.0)
    ap.add_argument("--netns", action="store_true")
    ap.add_argument("--accel", default="tcg")
    ap.add_argument("--log", default=None)
    ap.add_argument("--preload", default=None,
                    help="JSON list of VM specs to create at start (fields of SandboxInfo)")
    args = ap.parse_args()
    state = State(args)
    logf = open(args.log, "a") if args.log else sys.stderr

    def log(msg):
        logf.write("%s fake-service: %s\n" % (time.strftime("%H:%M:%S"), msg))
        logf.flush()
    state.log = log
    if args.preload:
        for spec in json.loads(args.preload):
            vm = create_vm(state, {"name": spec.get("name")})
            if "status" in spec:
                set_status(vm, spec["status"])
            vm.update(spec)
    tmp = args.uds_path + ".tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    srv = Server(tmp, Handler)
    srv.state = state
    os.chmod(tmp, 0o600)
    os.rename(tmp, args.uds_path)  # appears only when ready
    pid_path = os.path.join(state.run_dir, "service.pid")
    with open(pid_path, "w") as f:
        f.write("%d\n" % os.getpid())
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
    log("listening on %s (version %s)" % (args.uds_path, args.version))
    srv.serve_forever()
    os.unlink(args.uds_path)
    if os.path.exists(pid_path):
        os.unlink(pid_path)
    for vm in list(state.vms):
        delete_vm(state, vm)
    shutil.rmtree(state.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
