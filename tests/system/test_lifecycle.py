"""VM lifecycle through the service API: named VMs, stop/resume, suspend
with memory, persist, fork images, purge, crashes (surface.md section 3)."""
import json
import os
import signal
import threading
import uuid

import psutil
import pytest

from conftest import wait_for


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def status(capsem, vm):
    return capsem.api("GET", f"/vms/{vm}/info").json["status"]


def stop(capsem, vm):
    r = capsem.api("POST", f"/vms/{vm}/stop")
    assert r.status == 200, r
    return r.json


def resume(capsem, vm):
    r = capsem.api("POST", f"/vms/{vm}/resume")
    assert r.status == 200, r
    return r.json


@pytest.fixture
def named(capsem):
    name = unique("keep")
    info = capsem.create(name=name, profile_id="minimal", ram_mb=512)
    yield name
    capsem.delete(info["id"])


def test_named_vm_keeps_disks_across_stop_and_resume(capsem, named):
    capsem.exec(named, "echo ws > /root/kept.txt; echo ovl > /etc/kept.conf; sync")
    assert stop(capsem, named) == {"success": True, "persistent": True}
    info = capsem.api("GET", f"/vms/{named}/info").json
    assert info["status"] == "Stopped" and info["pid"] == 0 and info["can_resume"] is True
    assert info["available_actions"] == ["start", "fork", "delete"]
    assert capsem.api("POST", f"/vms/{named}/stop").status == 200  # stop of a Stopped VM: no-op
    r = capsem.api("POST", f"/vms/{named}/exec", {"command": "true"})
    assert r.status == 409 and r.json["error"] == "cannot exec in VM in state Stopped"
    prov = resume(capsem, named)
    assert prov["status"] == "Running" and prov["name"] == named
    out = capsem.exec(named, "cat /root/kept.txt /etc/kept.conf")
    assert out["stdout"] == "ws\novl\n"
    assert resume(capsem, named)["status"] == "Running"  # resume of a Running VM: no-op


def test_suspend_keeps_processes_and_memory(capsem, named):
    capsem.exec(named, "sleep 1000 >/dev/null 2>&1 & echo $! > /root/pid; echo mem > /tmp/inmem")
    r = capsem.api("POST", f"/vms/{named}/pause")
    assert r.status == 200 and r.json == {"success": True}
    info = capsem.api("GET", f"/vms/{named}/info").json
    assert info["status"] == "Suspended" and info["available_actions"] == ["resume", "fork", "delete"]
    ckpt = os.path.join(capsem.home, "run", "persistent", info["id"], "checkpoint.bin")
    assert os.path.getsize(ckpt) > 0
    resume(capsem, named)
    out = capsem.exec(named, "kill -0 $(cat /root/pid) && echo alive; cat /tmp/inmem")
    assert out["stdout"] == "alive\nmem\n"
    assert not os.path.exists(ckpt)  # spent once restored
    assert capsem.api("GET", f"/vms/{named}/info").json["last_error"] is None


def test_unusable_checkpoint_falls_back_to_a_cold_boot(capsem, named):
    capsem.exec(named, "echo disk > /root/d.txt; sync; echo mem > /tmp/m.txt")
    assert capsem.api("POST", f"/vms/{named}/pause").status == 200
    vm_id = capsem.api("GET", f"/vms/{named}/info").json["id"]
    vmdir = os.path.join(capsem.home, "run", "persistent", vm_id)
    with open(os.path.join(vmdir, "checkpoint.bin"), "r+b") as f:
        f.truncate(4096)
    resume(capsem, named)
    out = capsem.exec(named, "cat /root/d.txt; cat /tmp/m.txt 2>/dev/null || echo no-mem")
    assert out["stdout"] == "disk\nno-mem\n"
    info = capsem.api("GET", f"/vms/{named}/info").json
    assert "warm restore failed" in info["last_error"]
    assert [f for f in os.listdir(vmdir) if f.startswith("checkpoint.failed-")]


def test_state_errors(capsem, vm):
    r = capsem.api("POST", f"/vms/{vm}/pause")
    assert r.status == 400 and r.json["error"] == "ephemeral VMs cannot be suspended (persist first)"
    r = capsem.api("POST", "/vms/create", {"name": "bad name!", "profile_id": "minimal"})
    assert r.status == 400 and "invalid VM name" in r.json["error"]
    name = capsem.api("GET", f"/vms/{vm}/info").json["name"]
    r = capsem.api("POST", "/vms/create", {"name": name, "profile_id": "minimal"})
    assert r.status == 409 and r.json["error"] == f"name already in use: {name}"
    r = capsem.api("POST", "/vms/create", {"name": str(uuid.uuid4()), "profile_id": "minimal"})
    assert r.status == 400
    assert capsem.api("POST", "/vms/nope/stop").status == 404
    assert capsem.api("GET", f"/vms/{vm}/stop").status == 405


def test_persist_turns_an_ephemeral_vm_into_a_named_one(capsem):
    vm_id = capsem.create(profile_id="minimal", ram_mb=512)["id"]
    capsem.exec(vm_id, "echo before > /root/p.txt")
    name = unique("saved")
    r = capsem.api("POST", f"/vms/{vm_id}/save", {"name": name})
    assert r.status == 200 and r.json == {"success": True, "name": name}
    info = capsem.api("GET", f"/vms/{name}/info").json
    assert info["id"] == vm_id and info["persistent"] is True
    assert os.path.isdir(os.path.join(capsem.home, "run", "persistent", vm_id))
    r = capsem.api("POST", f"/vms/{vm_id}/save", {"name": unique("again")})
    assert r.status == 409
    stop(capsem, name)
    assert status(capsem, name) == "Stopped"  # not destroyed: it has a name now
    resume(capsem, name)
    assert capsem.exec(name, "cat /root/p.txt")["stdout"] == "before\n"
    assert capsem.delete(name).status == 200


def test_fork_image_create_sees_parent_files_not_later_changes(capsem, named):
    capsem.exec(named, "echo v1 > /root/f.txt; echo etc > /etc/forked.conf; sync")
    image = unique("img")
    r = capsem.api("POST", f"/vms/{named}/fork", {"name": image, "description": "test image"})
    assert r.status == 200, r
    assert r.json["name"] == image and r.json["size_bytes"] > 0
    capsem.exec(named, "echo v2 > /root/f.txt")  # a later change in the parent
    info = capsem.api("GET", f"/images/{image}/info").json
    assert info["forked_from"] == named and info["profile_id"] == "minimal"
    assert info["in_use_by"] == []
    # Sparse copies: far less allocated than the 16 GiB apparent size.
    assert info["size_bytes"] < 512 * 1024 * 1024
    child = capsem.create(image=image, ram_mb=512)
    out = capsem.exec(child["id"], "cat /root/f.txt /etc/forked.conf")
    assert out["stdout"] == "v1\netc\n"
    cinfo = capsem.api("GET", f"/vms/{child['id']}/info").json
    assert cinfo["image"] == image and cinfo["persistent"] is False
    r = capsem.api("DELETE", f"/images/{image}/delete")
    assert r.status == 409 and r.json["error"] == f"image in use by: {cinfo['name']}"
    assert [i["name"] for i in capsem.api("GET", "/images/list").json["images"]].count(image) == 1
    # Forking a VM made from an image yields a self-contained image.
    image2 = unique("img2")
    assert capsem.api("POST", f"/vms/{child['id']}/fork", {"name": image2}).status == 200
    capsem.delete(child["id"])
    assert capsem.api("DELETE", f"/images/{image}/delete").status == 200
    child2 = capsem.create(image=image2, ram_mb=512)
    assert capsem.exec(child2["id"], "cat /root/f.txt")["stdout"] == "v1\n"
    capsem.delete(child2["id"])
    assert capsem.api("DELETE", f"/images/{image2}/delete").status == 200
    assert capsem.api("GET", f"/images/{image}/info").status == 404


def test_fork_of_a_stopped_vm_and_name_clash(capsem, named):
    capsem.exec(named, "echo stopped-fork > /root/s.txt; sync")
    stop(capsem, named)
    image = unique("simg")
    assert capsem.api("POST", f"/vms/{named}/fork", {"name": image}).status == 200
    r = capsem.api("POST", f"/vms/{named}/fork", {"name": image})
    assert r.status == 409
    child = capsem.create(image=image, ram_mb=512)
    assert capsem.exec(child["id"], "cat /root/s.txt")["stdout"] == "stopped-fork\n"
    capsem.delete(child["id"])
    capsem.api("DELETE", f"/images/{image}/delete")


def test_killed_process_of_a_named_vm_leaves_it_stopped_with_the_error(capsem, named):
    capsem.exec(named, "echo safe > /root/safe.txt; sync")
    pid = capsem.api("GET", f"/vms/{named}/info").json["pid"]
    qemu = [c for c in psutil.Process(pid).children() if "qemu-system" in " ".join(c.cmdline())]
    os.kill(pid, signal.SIGKILL)
    qemu[0].wait(timeout=30)
    wait_for(lambda: status(capsem, named) == "Stopped", 30, "the VM to be Stopped")
    info = capsem.api("GET", f"/vms/{named}/info").json
    assert "exited unexpectedly" in info["last_error"]
    resume(capsem, named)
    assert capsem.exec(named, "cat /root/safe.txt")["stdout"] == "safe\n"


def test_four_vms_at_once(capsem):
    ids = []
    threads = [threading.Thread(target=lambda: ids.append(
        capsem.create(profile_id="minimal", ram_mb=256, cpus=1)["id"])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(ids) == 4
    outs = {}
    execs = [threading.Thread(target=lambda i=i: outs.__setitem__(
        i, capsem.exec(i, "hostname")["stdout"])) for i in ids]
    for t in execs:
        t.start()
    for t in execs:
        t.join(300)
    names = {capsem.api("GET", f"/vms/{i}/info").json["name"] for i in ids}
    assert {o.strip() for o in outs.values()} == names
    r = capsem.api("POST", "/purge", {})
    assert r.status == 200
    assert r.json["ephemeral_purged"] >= 4 and r.json["persistent_purged"] == 0
    assert not [v for v in capsem.vms() if not v["persistent"]]


def test_profiles_and_service_logs(capsem):
    profiles = capsem.api("GET", "/profiles/list").json["profiles"]
    assert {p["id"]: p["ready"] for p in profiles} == {"code": True, "minimal": True}
    r = capsem.api("GET", "/service-logs?tail=5&grep=LISTENING")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert b"listening on" in r.body
    assert len(capsem.api("GET", "/service-logs?tail=3").body.splitlines()) == 3


def test_history_records_every_exec(capsem, named):
    for cmd in ("echo one", "echo two >&2; exit 3", "echo 50%_done"):
        capsem.exec(named, cmd)
    h = capsem.api("GET", f"/vms/{named}/history?limit=2").json
    assert h["total"] == 3 and h["has_more"] is True
    assert [c["command"] for c in h["commands"]] == ["echo 50%_done", "echo two >&2; exit 3"]
    second = h["commands"][1]
    assert second["exit_code"] == 3 and second["stderr_preview"] == "two\n"
    assert second["layer"] == "exec" and second["timestamp"].endswith("Z")
    h = capsem.api("GET", f"/vms/{named}/history?search=%25_d").json
    assert [c["command"] for c in h["commands"]] == ["echo 50%_done"]
    assert capsem.api("GET", f"/vms/{named}/history?layer=audit").json["commands"] == []
    stop(capsem, named)  # history outlives the process
    assert capsem.api("GET", f"/vms/{named}/history").json["total"] == 3


def test_files_of_a_stopped_vm_through_the_disk_image(capsem, named):
    capsem.exec(named, "mkdir -p /root/docs && echo guest > /root/docs/g.txt; sync")
    stop(capsem, named)
    r = capsem.api("GET", f"/vms/{named}/files/content?path=/root/docs/g.txt")
    assert r.status == 200 and r.body == b"guest\n"
    data = os.urandom(200_000)
    r = capsem.api("POST", f"/vms/{named}/files/content?path=docs/host.bin", raw=data)
    assert r.status == 200 and r.json == {"success": True, "size": len(data)}
    listing = capsem.api("GET", f"/vms/{named}/files/list?path=/root/docs").json["entries"]
    assert [(e["name"], e["type"], e["size"]) for e in listing] == [
        ("g.txt", "file", 6), ("host.bin", "file", len(data))]
    r = capsem.api("GET", f"/vms/{named}/files/content?path=/etc/passwd")
    assert r.status == 403
    resume(capsem, named)
    out = capsem.exec(named, "sha256sum /root/docs/host.bin | cut -d' ' -f1")
    import hashlib
    assert out["stdout"].strip() == hashlib.sha256(data).hexdigest()
    assert capsem.api("POST", f"/vms/{named}/pause").status == 200
    r = capsem.api("POST", f"/vms/{named}/files/content?path=docs/late.txt", raw=b"x")
    assert r.status == 409
    r = capsem.api("GET", f"/vms/{named}/files/content?path=docs/g.txt")
    assert r.status == 200 and r.body == b"guest\n"


def test_boot_templates_serve_later_creates_including_images(capsem, named):
    """The first VM of a configuration boots cold and leaves a template; the
    next ones restore it, for plain profiles and for images alike."""
    capsem.exec(named, "echo from-image > /root/t.txt; sync")
    image = unique("timg")
    assert capsem.api("POST", f"/vms/{named}/fork", {"name": image}).status == 200
    log = os.path.join(capsem.home, "logs", "service.log")
    root = os.path.join(capsem.home, "cache", "boot-templates")

    def templates():
        """Templates made for this image."""
        found = set()
        for d in os.listdir(root) if os.path.isdir(root) else []:
            meta = os.path.join(root, d, "template.json")
            if not d.startswith(".") and os.path.exists(meta):
                if json.load(open(meta)).get("image") == image:
                    found.add(d)
        return found

    first = capsem.create(image=image, ram_mb=768)  # a configuration no other test uses
    assert capsem.exec(first["id"], "cat /root/t.txt")["stdout"] == "from-image\n"
    wait_for(lambda: templates(), 120, "a boot template for the image")
    second = capsem.create(image=image, ram_mb=768)
    out = capsem.exec(second["id"], "cat /root/t.txt; hostname; head -c 16 /dev/urandom | od -An -tx1")
    lines = out["stdout"].splitlines()
    assert lines[0] == "from-image" and lines[1] == second["name"]
    third = capsem.create(image=image, ram_mb=768)
    rnd3 = capsem.exec(third["id"], "head -c 16 /dev/urandom | od -An -tx1")["stdout"]
    assert rnd3.strip() != lines[2].strip()  # restored clones do not share RNG output
    text = open(log).read()
    assert f"creating VM {second['name']}" in text
    assert f"{second['name']} ({second['id']}), profile minimal, image {image}, 2 vCPU, 768 MiB, " \
           f"from a boot template" in text
    for vm in (first, second, third):
        capsem.delete(vm["id"])
    assert capsem.api("DELETE", f"/images/{image}/delete").status == 200
    assert not templates()  # the image's template went with it
