"""Restart without loss: a shim killed (-9) or stopped (SIGTERM) and started again on the same
state directory re-adopts its sessions: variables, files and ids come back."""

import base64
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

from shimtest import Client, RestartTestCase, wait_for



def gone(pid):
    """Has process PID ended (gone, or a zombie nobody reaped yet)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


class TestRestart(RestartTestCase):
    tenants = ("default", "t1")

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

    def test_stop_while_a_warm_sandbox_starts(self):
        # SIGTERM lands after the worker made the warm sandbox's container and before it
        # started it: the container waits on its exec.fifo with the worker's fds.  The test
        # holds the window open by holding the container's runtime lock, which `start` needs
        # and `create` does not take.  The shim must still end, and the warm sandbox go.
        self.stop(signal.SIGTERM)
        runtime = os.path.join(self.state, "runtime")
        self.start(["--warm", "1"])
        made = wait_for(lambda: os.path.isdir(runtime) and
                        [d for d in os.listdir(runtime) if d.startswith("cntr_")],
                        "the warm sandbox's container to be begun", interval=0.0005)
        cdir = os.path.join(runtime, made[0])
        lock = os.open(cdir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)

            def created():
                try:
                    with open(os.path.join(cdir, "state.json")) as f:
                        return json.load(f).get("creating") is False
                except (OSError, ValueError):
                    return False
            wait_for(created, "the container to be made")
            self.assertTrue(os.path.exists(os.path.join(cdir, "exec.fifo")),
                            "the lock was taken before the container started")
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                workers = [int(p) for p in f.read().split()]
            self.client.close()
            self.proc.send_signal(signal.SIGTERM)
            # the start worker (waiting for the lock) is killed; then the lock goes
            for w in workers:
                wait_for(lambda: gone(w), "the start worker to be killed")
        finally:
            os.close(lock)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.fail("the shim did not end after SIGTERM: " + self.shim_log())
        self.assertFalse(os.path.exists(cdir), "the warm sandbox's container was removed")
        with open("/proc/self/mountinfo") as f:
            self.assertEqual([l for l in f if made[0] in l], [], "its mounts are gone")
        self.start()

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
