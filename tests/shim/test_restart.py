"""Restart without loss: a shim killed (-9) or stopped (SIGTERM) and started again on the same
state directory re-adopts its sessions: variables, files and ids come back."""

import base64
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

from shimtest import SHIM, TEST_TIERS, Client, sweep_state, unmount_under, wait_for



class TestRestart(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        self.work = tempfile.mkdtemp(prefix="capsule-shim-restart.")
        os.chmod(self.work, 0o755)
        self.sock = os.path.join(self.work, "shim.sock")
        self.tiers = os.path.join(self.work, "tiers.json")
        with open(self.tiers, "w") as f:
            json.dump(TEST_TIERS, f)
        self.proc = None
        self.start()

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        log = open(os.path.join(self.work, "shim.log"), "ab")
        self.proc = subprocess.Popen([SHIM, "--socket", self.sock, "--state-dir",
                                      os.path.join(self.work, "state"), "--tiers", self.tiers,
                                      "--warm", "1"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + 15
        while not os.path.exists(self.sock):
            self.assertIsNone(self.proc.poll(), "the shim died at start")
            self.assertLess(time.time(), deadline, "the shim did not start")
            time.sleep(0.02)
        self.client = Client(self.sock)

    def stop(self, sig):
        self.client.close()
        self.proc.send_signal(sig)
        self.proc.wait(30)

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            for tenant in ("default", "t1"):
                for c in self.client.call("containers.list", limit=100, tenant=tenant)["data"]:
                    self.client.call("containers.delete", container_id=c["id"], tenant=tenant)
            self.stop(signal.SIGTERM)
        sandboxes = sweep_state(os.path.join(self.work, "state"))
        with open("/proc/self/mountinfo") as f:
            left = [l for l in f if self.work in l]
        unmount_under(self.work)
        subprocess.run(["rm", "-rf", self.work])
        self.assertEqual(sandboxes, [], "sandboxes left running")
        self.assertEqual(left, [], "mounts left behind")

    def test_kill_9_then_restart(self):
        cid = self.client.call("containers.create", name="survivor", tenant="t1")["id"]
        self.client.call("containers.exec", container_id=cid, code="import math\nkept = 41",
                         tenant="t1")
        f = self.client.call("files.create", container_id=cid, path="notes.txt",
                             content=base64.b64encode(b"still here").decode(), tenant="t1")
        self.stop(signal.SIGKILL)
        self.start()
        got = self.client.call("containers.retrieve", container_id=cid, tenant="t1")
        self.assertEqual((got["name"], got["status"], got["tenant"]), ("survivor", "running", "t1"))
        r = self.client.call("containers.exec", container_id=cid, code="kept + 1, math.pi > 3",
                             tenant="t1")
        self.assertEqual(r["result"], "(42, True)", "variables and imports survive")
        self.assertFalse(r["interpreter_restarted"])
        content = self.client.call("files.content", container_id=cid, file_id=f["id"],
                                   tenant="t1")
        self.assertEqual(base64.b64decode(content["content"]), b"still here")
        pools = {p["tenant"]: p["used"] for p in self.client.call("shim.status")["pools"]}
        self.assertEqual(pools.get("t1"), "160m", "the re-adopted session is charged again")

    def test_kill_9_mid_exec(self):
        cid = self.client.call("containers.create", name="busy")["id"]
        self.client.call("containers.exec", container_id=cid, code="x = 1")
        caller = Client(self.sock)  # its own connection: the one the kill must cut
        caller.send_raw((json.dumps({"jsonrpc": "2.0", "id": 99, "method": "containers.exec",
                                     "params": {"container_id": cid, "code":
                                                "import time\nopen('started', 'w').close()\n"
                                                "time.sleep(1.5)\nx = 2"}})
                         + "\n").encode())
        data = os.path.join(self.work, "state", "sessions", cid, "data", "started")
        wait_for(lambda: os.path.exists(data), "the cell to start")
        self.stop(signal.SIGKILL)
        caller.sock.settimeout(10)
        with self.assertRaises((ConnectionError, ConnectionResetError)):
            caller.read_message()  # EOF: the caller's connection is gone, and it knows
        caller.close()
        self.start()
        r = self.client.call("containers.exec", container_id=cid, code="x")
        self.assertEqual(r["result"], "2", "the cut-off cell finished; the session lives on")

    def test_sigterm_keeps_sandboxes(self):
        cid = self.client.call("containers.create", name="upgrade")["id"]
        self.client.call("containers.exec", container_id=cid, code="v = 'before upgrade'")
        self.stop(signal.SIGTERM)
        self.start()
        self.assertEqual(self.client.call("containers.exec", container_id=cid, code="v")["result"],
                         "'before upgrade'")
        ids = [c["id"] for c in self.client.call("containers.list")["data"]]
        self.assertEqual(ids, [cid], "warm sandboxes were not carried over as containers")

    def test_dead_sandbox_restarts_with_files(self):
        cid = self.client.call("containers.create", name="crash")["id"]
        self.client.call("files.create", container_id=cid, path="keep.txt",
                         content=base64.b64encode(b"k").decode())
        self.client.call("containers.exec", container_id=cid, code="y = 1")
        self.stop(signal.SIGKILL)
        # the sandbox dies while no shim runs
        state = os.path.join(self.work, "state", "runtime", cid, "state.json")
        with open(state) as f:
            pid = json.load(f)["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                 open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z", "the sandbox to die")
        self.start()
        r = self.client.call("containers.exec", container_id=cid, code="open('keep.txt').read()")
        self.assertEqual(r["result"], "'k'")
        self.assertTrue(r["interpreter_restarted"], "the lost variables are reported")
