"""Helpers for the capsule-shim end-to-end tests: start a shim on a private state directory,
talk JSON-RPC to it over its unix socket, stop it by pid and check it left nothing behind."""

import base64
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
SHIM = os.environ.get("CAPSULE_SHIM", os.path.join(BUILD, "shim", "capsule-shim"))

# Small tiers so that OOM and pool tests are quick; the names are the API's.
TEST_TIERS = {
    "default": "1g",
    "tenant_pool": "768m",
    "tiers": {
        "1g": {"memory": "160m", "workspace": "16m", "tmp": "16m", "pids": 64, "nofile": 256},
        "4g": {"memory": "256m", "workspace": "32m", "tmp": "16m", "pids": 128},
        "16g": {"memory": "512m", "workspace": "32m", "pids": 128},
        "64g": {"memory": "1g", "workspace": "32m", "pids": 128},
    },
}


CAPSULE = os.environ.get("CAPSULE", os.path.join(BUILD, "runtime", "capsule"))


def sweep_state(state):
    """After the shim stopped: the sandboxes still recorded in its runtime root (sessions a test
    left, which outlive a shim by design) are removed, and their ids returned."""
    root = os.path.join(state, "runtime")
    try:
        ids = [d for d in os.listdir(root) if d.startswith("cntr_")]
    except OSError:
        return []
    for cid in ids:
        subprocess.run([CAPSULE, "--root", root, "delete", "--force", cid],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return ids


def unmount_under(top):
    with open("/proc/self/mountinfo") as f:
        points = [l.split()[4] for l in f if l.split()[4].startswith(top + "/")]
    for p in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", p], stderr=subprocess.DEVNULL)


def gone(pid):
    """Has process PID ended (gone, or a zombie nobody reaped yet)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


def init_pid(state, cid):
    """The pid of container CID's init, from the runtime record under the shim's STATE."""
    with open(os.path.join(state, "runtime", cid, "state.json")) as f:
        return json.load(f)["pid"]


def wait_for(cond, what, timeout=60, interval=0.02):
    """Wait for COND() to be true (an event, never a guess at how long something takes); fail
    saying WHAT after a generous TIMEOUT."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(error.get("message"))
        self.error = error
        self.data = error.get("data") or {}


class Client:
    def __init__(self, path, timeout=120):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.next_id = 0
        self.notifications = []

    def send_raw(self, data: bytes):
        self.file.write(data)
        self.file.flush()

    def read_message(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("the shim closed the connection")
        return json.loads(line)

    def request(self, method, params=None, **kw):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is None:
            params = kw
        if params is not None:
            msg["params"] = params
        self.send_raw((json.dumps(msg) + "\n").encode())
        while True:
            m = self.read_message()
            if "id" not in m:
                self.notifications.append(m)
                continue
            if m["id"] != self.next_id:
                raise AssertionError(f"answer to another request: {m}")
            return m

    def call(self, method, **params):
        m = self.request(method, params)
        if "error" in m:
            raise RpcError(m["error"])
        return m["result"]

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


class ShimTestCase(unittest.TestCase):
    """One shim for the whole class."""

    extra_args = []
    tiers = TEST_TIERS

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (namespaces, cgroups, mounts)")
        cls.work = tempfile.mkdtemp(prefix="capsule-shim-test.")
        os.chmod(cls.work, 0o755)
        cls.socket = os.path.join(cls.work, "shim.sock")
        cls.state = os.path.join(cls.work, "state")
        tiers = os.path.join(cls.work, "tiers.json")
        with open(tiers, "w") as f:
            json.dump(cls.tiers, f)
        cls.log = open(os.path.join(cls.work, "shim.log"), "wb")
        cls.proc = subprocess.Popen(
            [SHIM, "--socket", cls.socket, "--state-dir", cls.state, "--tiers", tiers,
             "--interrupt-grace", "1500", "--max-message", "8m", "--max-upload", "4m"]
            + cls.extra_args,
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60  # generous: the socket is an event, this only bounds it
        while not os.path.exists(cls.socket):
            if cls.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("capsule-shim did not start: " + cls.shim_log())
            time.sleep(0.02)
        cls.client = Client(cls.socket)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.proc.send_signal(signal.SIGTERM)
        try:
            cls.proc.wait(30)
        except subprocess.TimeoutExpired:
            cls.proc.kill()
            cls.proc.wait()
        cls.log.close()
        sandboxes = sweep_state(cls.state)
        with open("/proc/self/mountinfo") as f:
            leftovers = [l for l in f if cls.work in l]
        if cls.proc.returncode != 0 or os.environ.get("KEEP_SHIM_LOG"):
            print(f"capsule-shim exited with {cls.proc.returncode}; its log:\n{cls.shim_log()}")
        unmount_under(cls.work)
        subprocess.run(["rm", "-rf", cls.work])
        if sandboxes:
            raise AssertionError("sessions a test did not delete were left running: "
                                 + " ".join(sandboxes))
        if leftovers:
            raise AssertionError("the shim left mounts behind: " + "".join(leftovers))

    @classmethod
    def shim_log(cls):
        try:
            with open(os.path.join(cls.work, "shim.log")) as f:
                return f.read()
        except OSError:
            return ""

    def create(self, **kw):
        kw.setdefault("name", self.id().split(".")[-1])
        c = self.client.call("containers.create", **kw)
        self.addCleanup(self.delete_quietly, c["id"], kw.get("tenant"))
        return c

    def delete_quietly(self, cid, tenant=None):
        try:
            extra = {"tenant": tenant} if tenant else {}
            self.client.call("containers.delete", container_id=cid, **extra)
        except (RpcError, OSError):
            pass

    def exec(self, cid, code, **kw):
        return self.client.call("containers.exec", container_id=cid, code=code, **kw)

    def upload(self, cid, path, data: bytes, client=None):
        return (client or self.client).call("files.create", container_id=cid, path=path,
                                            content=base64.b64encode(data).decode())

    def download(self, cid, file_id):
        r = self.client.call("files.content", container_id=cid, file_id=file_id)
        return base64.b64decode(r["content"])

    def assertRpcError(self, fn, code=None, http=None, param=None, message=None):
        with self.assertRaises(RpcError) as cm:
            fn()
        d = cm.exception.data
        if code is not None:
            self.assertEqual(d.get("code"), code, cm.exception.error)
        if http is not None:
            self.assertEqual(d.get("http_status"), http, cm.exception.error)
        if param is not None:
            self.assertEqual(d.get("param"), param, cm.exception.error)
        if message is not None:
            self.assertIn(message, d.get("message", ""), cm.exception.error)
        for k in ("message", "type", "param", "code"):
            self.assertIn(k, d, "OpenAI's error object has message, type, param, code")
        return cm.exception


class RestartTestCase(unittest.TestCase):
    """A shim of each test's own, to kill (-9), stop and start again on the same state."""

    tenants = ("default",)  # whose containers tearDown deletes
    shim_args = ["--warm", "1"]

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        self.work = tempfile.mkdtemp(prefix="capsule-shim-restart.")
        os.chmod(self.work, 0o755)
        self.sock = os.path.join(self.work, "shim.sock")
        self.state = os.path.join(self.work, "state")
        self.tiers = os.path.join(self.work, "tiers.json")
        with open(self.tiers, "w") as f:
            json.dump(TEST_TIERS, f)
        self.proc = None
        self.start()

    def start(self, extra=None):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        log = open(os.path.join(self.work, "shim.log"), "ab")
        self.proc = subprocess.Popen([SHIM, "--socket", self.sock, "--state-dir", self.state,
                                      "--tiers", self.tiers, "--interrupt-grace", "1500"]
                                     + (self.shim_args if extra is None else extra),
                                     stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=self.in_shim_before_exec)
        log.close()
        deadline = time.time() + 60  # generous: the socket is an event, this only bounds it
        while not os.path.exists(self.sock):
            self.assertIsNone(self.proc.poll(), "the shim died at start: " + self.shim_log())
            self.assertLess(time.time(), deadline, "the shim did not start")
            time.sleep(0.02)
        self.client = Client(self.sock)

    # a method run in the shim's process before it execs (a test puts it in a cgroup there);
    # none by default (preexec_fn is no friend of threads)
    in_shim_before_exec = None

    def workers(self):
        """The shim's children now (its workers), by pid."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return {int(p) for p in f.read().split()}

    def stop(self, sig):
        self.client.close()
        self.proc.send_signal(sig)
        self.proc.wait(30)

    def shim_log(self):
        try:
            with open(os.path.join(self.work, "shim.log")) as f:
                return f.read()
        except OSError:
            return ""

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            for tenant in self.tenants:
                for c in self.client.call("containers.list", limit=100, tenant=tenant)["data"]:
                    self.client.call("containers.delete", container_id=c["id"], tenant=tenant)
            self.stop(signal.SIGTERM)
        sandboxes = sweep_state(self.state)
        with open("/proc/self/mountinfo") as f:
            left = [l for l in f if self.work in l]
        unmount_under(self.work)
        subprocess.run(["rm", "-rf", self.work])
        self.assertEqual(sandboxes, [], "sandboxes left running")
        self.assertEqual(left, [], "mounts left behind")
