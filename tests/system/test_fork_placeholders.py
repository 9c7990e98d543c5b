"""A forked VM keeps its parent's credential placeholders (network.md
section 10): the fork copies the VM's `placeholders` file into the image,
VMs created from the image get it before their capsem-process starts, and
VMs restored from a boot template make their own."""

import json
import os
import re
import stat

import pytest

from conftest import wait_for
from guestdb import write_credentials

SECRET = "sk-ant-fork-test-" + "q" * 24
PLACEHOLDER = re.compile(r"capsem-placeholder-anthropic-[a-z2-7]{26}")
IMAGE = "phimage"


@pytest.fixture(scope="module")
def secrets(capsem):
    path = write_credentials(capsem.home, anthropic=SECRET)
    yield path
    os.unlink(path)


def guest_key(capsem, vm):
    out = capsem.exec(vm, 'printf %s "$ANTHROPIC_API_KEY"', timeout_secs=60)
    assert out["exit_code"] == 0, out
    return out["stdout"]


def vm_dir(capsem, vm):
    return os.path.join(capsem.home, "run", "sessions", vm)


def assert_private_file(path):
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)


def wait_template(capsem, image):
    """Waits for the boot template of code VMs of this image ("" for none),
    so the next such VM restores from it instead of booting cold."""
    if os.environ.get("CAPSEM_BOOT_TEMPLATES") == "0":
        return None
    root = os.path.join(capsem.home, "cache", "boot-templates")

    def find():
        for key in os.listdir(root) if os.path.isdir(root) else []:
            meta = os.path.join(root, key, "template.json")
            if key.startswith(".") or not os.path.exists(meta):
                continue
            with open(meta) as f:
                j = json.load(f)
            if j.get("profile") == "code" and j.get("image", "") == image:
                return os.path.join(root, key)
        return None

    wait_for(lambda: find() is not None, 300, f"a boot template for image {image!r}", 0.5)
    return find()


def restored(capsem, vm):
    with open(os.path.join(vm_dir(capsem, vm), "process.log"), errors="replace") as f:
        return "guest agent answered after the restore" in f.read()


def test_fork_carries_placeholders_and_fresh_vms_get_their_own(capsem, secrets):
    parent = capsem.create(profile_id="code", ram_mb=1024, cpus=2)["id"]
    key = guest_key(capsem, parent)
    # One template builds at a time: let the one for fresh code VMs finish
    # so the first VM of the image can start the image's own.
    fresh_template = wait_template(capsem, "")
    assert PLACEHOLDER.fullmatch(key), key
    assert SECRET not in key
    # A program in the VM stores the placeholder in its configuration.
    out = capsem.exec(parent, 'echo "$ANTHROPIC_API_KEY" > /root/agent.conf; sync')
    assert out["exit_code"] == 0, out

    r = capsem.api("POST", f"/vms/{parent}/fork", {"name": IMAGE})
    assert r.status == 200, r
    saved = os.path.join(capsem.home, "images", IMAGE, "placeholders")
    assert_private_file(saved)
    with open(saved) as f:
        assert f.read() == f"anthropic {key}\n"
    # The routes never show the values.
    listed = capsem.api("GET", "/images/list")
    info = capsem.api("GET", f"/images/{IMAGE}/info")
    assert listed.status == 200 and info.status == 200
    assert IMAGE in listed.body.decode()
    for body in (listed.body, info.body):
        assert b"capsem-placeholder" not in body and key.encode() not in body
    assert capsem.delete(parent).status == 200

    # Created from the image: the parent's value, in the env and in the file.
    child1 = capsem.create(image=IMAGE, ram_mb=1024, cpus=2)["id"]
    assert guest_key(capsem, child1) == key
    assert capsem.exec(child1, "cat /root/agent.conf")["stdout"] == key + "\n"
    assert_private_file(os.path.join(vm_dir(capsem, child1), "placeholders"))

    # A second VM of the same image shares it, also when it restores from
    # the image's boot template (built by a hidden VM with its own values).
    tdir = wait_template(capsem, IMAGE)
    if tdir:
        assert not os.path.exists(os.path.join(tdir, "placeholders"))
    child2 = capsem.create(image=IMAGE, ram_mb=1024, cpus=2)["id"]
    assert guest_key(capsem, child2) == key
    if tdir:
        assert restored(capsem, child2)
    assert guest_key(capsem, child1) == key
    assert capsem.delete(child1).status == 200
    assert capsem.delete(child2).status == 200

    # A fresh VM of the same profile gets a value of its own, also when it
    # restores from a template.
    tdir = fresh_template
    if tdir:
        assert not os.path.exists(os.path.join(tdir, "placeholders"))
    fresh = capsem.create(profile_id="code", ram_mb=1024, cpus=2)["id"]
    other = guest_key(capsem, fresh)
    if tdir:
        assert restored(capsem, fresh)
    assert PLACEHOLDER.fullmatch(other), other
    assert other != key
    with open(os.path.join(vm_dir(capsem, fresh), "placeholders")) as f:
        assert f.read() == f"anthropic {other}\n"
    fresh2 = capsem.create(profile_id="code", ram_mb=1024, cpus=2)["id"]
    third = guest_key(capsem, fresh2)
    assert PLACEHOLDER.fullmatch(third) and third not in (key, other)
    assert capsem.delete(fresh).status == 200
    assert capsem.delete(fresh2).status == 200

    # Deleting the image removes its placeholders with the rest.
    assert capsem.api("DELETE", f"/images/{IMAGE}/delete").status == 200
    assert not os.path.exists(os.path.join(capsem.home, "images", IMAGE))
