"""Every session's root is its own overlay of the image: writable everywhere for that session
alone (pip installs a wheel, /etc and /usr/local change), the image and every other session
untouched, the changes counted in the tier's workspace and kept across interpreter restarts."""

import base64
import hashlib
import io
import os
import signal
import subprocess
import zipfile

from shimtest import (CAPSULE, SHIM, RestartTestCase, ShimTestCase, init_pid, unmount_under,
                      wait_for)

WHEEL = "capsule_wheel_probe-1.0-py3-none-any.whl"


def make_wheel() -> bytes:
    """A pure-Python wheel, written here with zipfile: a package and its dist-info."""
    files = {
        "capsule_wheel_probe/__init__.py": b"ANSWER = 42\n",
        "capsule_wheel_probe-1.0.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: capsule-wheel-probe\nVersion: 1.0\n",
        "capsule_wheel_probe-1.0.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: capsule-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        rows = []
        for name, data in files.items():
            z.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            rows.append(f"{name},sha256={digest.decode()},{len(data)}")
        rows.append("capsule_wheel_probe-1.0.dist-info/RECORD,,")
        z.writestr("capsule_wheel_probe-1.0.dist-info/RECORD", "\n".join(rows) + "\n")
    return buf.getvalue()


def mountinfo() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


PIP = ("import subprocess, sys\n"
       "r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-index', "
       f"'/mnt/data/{WHEEL}'], capture_output=True, text=True)\n"
       "print(r.returncode)\nprint(r.stdout + r.stderr)")


class TestOverlayRoot(ShimTestCase):
    extra_args = ["--warm", "0"]

    def setUp(self):
        if self.client.call("shim.status")["root"] != "overlay":
            self.fail("this host has no overlay roots: "
                      + self.client.call("shim.status").get("root_reason", "?"))

    def test_pip_installs_a_wheel_for_this_session_alone(self):
        cid = self.create()["id"]
        other = self.create(name="other")["id"]
        self.upload(cid, WHEEL, make_wheel())
        r = self.exec(cid, PIP)
        self.assertEqual(r["status"], "completed", r)
        self.assertTrue(r["stdout"].startswith("0\n"), r["stdout"])
        self.assertIn("Successfully installed capsule-wheel-probe-1.0", r["stdout"])
        r = self.exec(cid, "import capsule_wheel_probe\ncapsule_wheel_probe.ANSWER")
        self.assertEqual(r["result"], "42", r)
        # another session's root is the pristine image
        r = self.exec(other, "import importlib.util\n"
                      "importlib.util.find_spec('capsule_wheel_probe') is None")
        self.assertEqual(r["result"], "True", r)
        # and so is the host's
        self.assertEqual([p for p in os.listdir("/usr/local/lib")
                          if "capsule_wheel_probe" in p], [])
        for d in ("/usr/local/lib/python3.11/dist-packages", "/usr/lib/python3/dist-packages"):
            if os.path.isdir(d):
                self.assertNotIn("capsule_wheel_probe", os.listdir(d))
        # the installed package is no file of /mnt/data's
        names = [f["path"] for f in self.client.call("files.list", container_id=cid)["data"]]
        self.assertEqual(names, [f"/mnt/data/{WHEEL}"])

    def test_the_whole_root_is_the_sessions_own(self):
        cid = self.create()["id"]
        other = self.create(name="other")["id"]
        r = self.exec(cid, "import os\n"
                      "open('/etc/capsule-note', 'w').write('mine')\n"
                      "os.makedirs('/opt/tool', exist_ok=True)\n"
                      "open('/opt/tool/run', 'w').write('x')\n"
                      "os.remove('/etc/hostname')\n"
                      "(os.getuid(), os.stat('/').st_uid, os.stat('/usr').st_uid)")
        self.assertEqual(r["status"], "completed", r)
        self.assertEqual(r["result"], "(1000, 1000, 1000)")
        r = self.exec(other, "import os\n(os.path.exists('/etc/capsule-note'), "
                      "os.path.exists('/opt/tool'), os.path.exists('/etc/hostname'))")
        self.assertEqual(r["result"], "(False, False, True)", r)
        self.assertFalse(os.path.exists("/etc/capsule-note"))
        # an interpreter restart (a new container) keeps the root the session changed
        r = self.exec(cid, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        self.assertNotEqual(r["status"], "completed")
        r = self.exec(cid, "open('/etc/capsule-note').read()")
        self.assertEqual(r["result"], "'mine'", r)

    def test_the_root_is_nosuid_and_nodev(self):
        cid = self.create()["id"]
        r = self.exec(cid, "[l.split()[5] for l in open('/proc/self/mountinfo') "
                      "if l.split()[4] == '/'][0]")
        opts = r["result"].strip("'").split(",")
        self.assertIn("nosuid", opts)
        self.assertIn("nodev", opts)
        # a set-id bit made in the session's root does nothing: no_new_privs and nosuid
        r = self.exec(cid, "import os, shutil, stat\nshutil.copy('/usr/bin/id', '/opt-id')\n"
                      "os.chmod('/opt-id', 0o4755)\n"
                      "bool(os.stat('/opt-id').st_mode & stat.S_ISUID)")
        self.assertEqual(r["result"], "True", r)
        r = self.exec(cid, "import subprocess\n"
                      "subprocess.run(['/opt-id', '-u'], capture_output=True, text=True)"
                      ".stdout.strip()")
        self.assertEqual(r["result"], "'1000'", r)

    def test_root_changes_count_in_the_workspace(self):
        cid = self.create()["id"]
        # the tier's workspace holds /mnt/data and the root's changes together
        r = self.exec(cid, "import os\nst = os.statvfs('/mnt/data')\n"
                      "before = st.f_bfree\n"
                      "open('/var/tmp/blob', 'wb').write(os.urandom(4 << 20))\n"
                      "(before - os.statvfs('/mnt/data').f_bfree) * st.f_frsize >= 4 << 20")
        self.assertEqual(r["result"], "True", r)

    def test_delete_takes_the_overlay(self):
        cid = self.create()["id"]
        self.exec(cid, "open('/etc/x', 'w').write('x')")
        self.client.call("containers.delete", container_id=cid)
        # the sandbox is torn down after the answer: its overlay, workspace and directory go
        wait_for(lambda: cid not in mountinfo(), "the session's mounts to go")
        wait_for(lambda: not os.path.exists(os.path.join(self.state, "sessions", cid)),
                 "the session's directory to go")


class TestOverlayRestart(RestartTestCase):
    shim_args = ["--warm", "0"]

    def test_root_changes_survive_kill_9_of_the_shim(self):
        cid = self.client.call("containers.create", name="keeps")["id"]
        r = self.client.call("containers.exec", container_id=cid,
                             code="open('/etc/capsule-note', 'w').write('kept')")
        self.assertEqual(r["status"], "completed", r)
        self.stop(signal.SIGKILL)
        self.start()
        r = self.client.call("containers.exec", container_id=cid,
                             code="open('/etc/capsule-note').read()")
        self.assertEqual(r["result"], "'kept'", r)
        # a new interpreter under the new shim gets the same root
        self.client.call("containers.exec", container_id=cid,
                         code="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        r = self.client.call("containers.exec", container_id=cid,
                             code="open('/etc/capsule-note').read()")
        self.assertEqual(r["result"], "'kept'", r)
        self.assertTrue(r["interpreter_restarted"], r)


EXT4_SUPER_MAGIC = 0xEF53
BIG_WORKSPACE = {
    "default": "1g",
    "tenant_pool": "768m",
    "tiers": {
        "1g": {"memory": "160m", "workspace": "512m", "tmp": "16m", "pids": 64},
        "4g": {"memory": "256m", "workspace": "32m", "pids": 128},
        "16g": {"memory": "256m", "workspace": "32m", "pids": 128},
        "64g": {"memory": "256m", "workspace": "32m", "pids": 128},
    },
}


class TestDiskWorkspace(ShimTestCase):
    """The workspace is an ext4 image on disk: files are not the sandbox's memory."""
    extra_args = ["--warm", "0"]
    tiers = BIG_WORKSPACE

    def setUp(self):
        status = self.client.call("shim.status")
        if status["workspace"] != "disk":
            self.fail("this host keeps workspaces in memory: " + status.get("workspace_reason", "?"))

    def test_files_past_the_memory_tier_fit_the_workspace(self):
        cid = self.create()["id"]
        # 160m of memory, 512m of workspace: 256 MiB of files is no OOM on disk (a tmpfs
        # would be charged to the sandbox and kill it)
        r = self.exec(cid, "import os\nchunk = os.urandom(1 << 20)\n"
                      "with open('/mnt/data/big.bin', 'wb') as f:\n"
                      "    for _ in range(256):\n        f.write(chunk)\n"
                      "    f.flush()\n    os.fsync(f.fileno())\n"
                      "(os.path.getsize('/mnt/data/big.bin') >> 20, hex(os.statvfs('/mnt/data')"
                      ".f_fsid) != '0x0')", timeout_ms=300000)
        self.assertEqual(r["status"], "completed", r)
        self.assertEqual(r["result"], "(256, True)", r)
        self.assertFalse(r["interpreter_restarted"], r)
        # the bytes are in the session's image on the state directory's disk (fsync'd)
        image = os.path.join(self.state, "sessions", cid, "ws.img")
        self.assertGreaterEqual(os.stat(image).st_blocks * 512, 256 << 20)
        # and the cap holds: past 512m is ENOSPC inside
        r = self.exec(cid, "import os\nchunk = os.urandom(1 << 20)\nn = 0\ntry:\n"
                      "    with open('/mnt/data/more.bin', 'wb') as f:\n"
                      "        while True:\n            f.write(chunk)\n            n += 1\n"
                      "except OSError as e:\n    print(e.strerror)\n"
                      "os.remove('/mnt/data/more.bin')\nos.remove('/mnt/data/big.bin')\nn < 512",
                      timeout_ms=300000)
        self.assertIn("No space left on device", r["stdout"], r)
        self.assertEqual(r["result"], "True", r)

    def test_the_workspace_is_ext4_on_a_loop_device(self):
        cid = self.create()["id"]
        with open(f"/proc/{init_pid(self.state, cid)}/mountinfo") as f:
            data = [l.split(" - ")[1].split()[:2] for l in f if l.split()[4] == "/mnt/data"]
        self.assertEqual(len(data), 1, data)
        self.assertEqual(data[0][0], "ext4")
        self.assertTrue(data[0][1].startswith("/dev/loop"), data)


class TestTmpfsWorkspace(ShimTestCase):
    """--workspaces tmpfs: the workspace in memory, by choice (the benchmark's baseline)."""
    extra_args = ["--warm", "0", "--workspaces", "tmpfs"]

    def test_the_workspace_is_a_tmpfs_and_status_says_why(self):
        status = self.client.call("shim.status")
        self.assertEqual((status["workspace"], status.get("workspace_reason")),
                         ("tmpfs", "--workspaces tmpfs"), status)
        cid = self.create()["id"]
        r = self.exec(cid, "open('/mnt/data/a.txt', 'w').write('in memory')\n"
                           "[l.split(' - ')[1].split()[0] for l in open('/proc/self/mountinfo')"
                           " if l.split()[4] == '/mnt/data']")
        self.assertEqual(r["result"], "['tmpfs']", r)
        self.assertFalse(os.path.exists(os.path.join(self.state, "sessions", cid, "ws.img")))
        up = self.upload(cid, "b.txt", b"uploaded")
        self.assertEqual(self.download(cid, up["id"]), b"uploaded")
        self.assertEqual(self.exec(cid, "open('/mnt/data/b.txt').read()")["result"],
                         "'uploaded'")

    def test_a_wrong_value_is_refused_at_start(self):
        p = subprocess.run([SHIM, "--socket", os.path.join(self.state, "x.sock"), "--state-dir",
                            os.path.join(self.state, "x"), "--workspaces", "ram"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('--workspaces: "ram" is not auto, disk or tmpfs', p.stderr)


class TestReboot(RestartTestCase):
    """A reboot, emulated: the shim killed, its sandboxes gone, every mount dropped; a new shim
    on the same state brings each session back with its files and its changed root."""
    shim_args = ["--warm", "0"]

    def test_a_session_comes_back_after_a_reboot(self):
        status = self.client.call("shim.status")
        if status["workspace"] != "disk":
            self.fail("workspaces are in memory here: " + status.get("workspace_reason", "?"))
        cid = self.client.call("containers.create", name="reboot")["id"]
        r = self.client.call("containers.exec", container_id=cid,
                             code="open('/mnt/data/notes.txt', 'w').write('kept')\n"
                             "open('/etc/capsule-note', 'w').write('root kept')\nv = 1")
        self.assertEqual(r["status"], "completed", r)
        self.stop(signal.SIGKILL)
        # the host goes down: no sandbox, no mount survives
        subprocess.run([CAPSULE, "--root", os.path.join(self.state, "runtime"), "delete",
                        "--force", cid], check=True, capture_output=True)
        session = os.path.join(self.state, "sessions", cid)
        unmount_under(session)
        unmount_under(os.path.join(self.state, "images"))
        self.assertNotIn(session, mountinfo())
        self.start()
        got = self.client.call("containers.retrieve", container_id=cid)
        self.assertEqual(got["status"], "running", got)
        files = self.client.call("files.list", container_id=cid)["data"]
        self.assertEqual([f["path"] for f in files], ["/mnt/data/notes.txt"])
        r = self.client.call("containers.exec", container_id=cid,
                             code="(open('/mnt/data/notes.txt').read(), "
                             "open('/etc/capsule-note').read(), 'v' in globals())")
        self.assertEqual(r["result"], "('kept', 'root kept', False)", r)
        self.assertTrue(r["interpreter_restarted"], r)
