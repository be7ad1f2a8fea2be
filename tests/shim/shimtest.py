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
            json.dump(TEST_TIERS, f)
        cls.log = open(os.path.join(cls.work, "shim.log"), "wb")
        cls.proc = subprocess.Popen(
            [SHIM, "--socket", cls.socket, "--state-dir", cls.state, "--tiers", tiers,
             "--interrupt-grace", "1500", "--max-message", "8m", "--max-upload", "4m"]
            + cls.extra_args,
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
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
        with open("/proc/self/mountinfo") as f:
            leftovers = [l for l in f if cls.work in l]
        if cls.proc.returncode != 0 or os.environ.get("KEEP_SHIM_LOG"):
            print(f"capsule-shim exited with {cls.proc.returncode}; its log:\n{cls.shim_log()}")
        subprocess.run(["rm", "-rf", cls.work])
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
        self.addCleanup(self.delete_quietly, c["id"])
        return c

    def delete_quietly(self, cid):
        try:
            self.client.call("containers.delete", container_id=cid)
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
