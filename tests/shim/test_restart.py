"""Restart without loss: a shim killed (-9) or stopped (SIGTERM) and started again on the same
state directory re-adopts its sessions: variables, files and ids come back."""

import base64
import errno
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

from shimtest import Client, RestartTestCase, gone, init_pid, unmount_under, wait_for


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
            workers = self.workers()
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
        pid = init_pid(self.state, cid)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: gone(pid), "the sandbox to die")
        self.start()
        r = self.client.call("containers.exec", container_id=cid, code="open('keep.txt').read()")
        self.assertEqual(r["result"], "'k'")
        self.assertTrue(r["interpreter_restarted"], "the lost variables are reported")


def own_pids_cgroup():
    """The v1 pids cgroup this process is in (a directory), or None on a host without one."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "pids" in controllers.split(","):
                d = "/sys/fs/cgroup/pids" + path.rstrip("/")
                return d if os.path.isdir(d) else None
    return None


@unittest.skipUnless(own_pids_cgroup(), "needs the cgroup v1 pids controller (hybrid hosts)")
class TestNoFork(RestartTestCase):
    """The shim cannot fork when its sandbox dies (its pids exhausted): the teardown then runs
    in the loop's own process, and must leave the session's lock free behind it."""

    shim_args = ["--warm", "0"]

    def setUp(self):
        # a pids cgroup of the test's own, a child of this process's, the shim in it from its
        # first instruction (its workers and sandboxes with it)
        self.cg = os.path.join(own_pids_cgroup(), f"capsule-test-nofork-{os.getpid()}")
        os.mkdir(self.cg)
        super().setUp()

    def in_shim_before_exec(self):
        with open(os.path.join(self.cg, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def set_max(self, v):
        with open(os.path.join(self.cg, "pids.max"), "w") as f:
            f.write(v)

    def kill_without_a_fork(self, pid):
        """Kill the sandbox's init PID while the shim cannot fork; back when its teardown in
        the loop is done."""
        self.set_max("0")
        try:
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: "tearing down in the loop" in self.shim_log(),
                     "the shim to tear the dead sandbox down in its loop")
            # the teardown runs in the loop after that line: a call answered is one after it
            self.client.call("shim.status")
        finally:
            self.set_max("max")

    def tearDown(self):
        try:
            self.set_max("max")
            super().tearDown()
        finally:
            def empty():
                with open(os.path.join(self.cg, "cgroup.procs")) as f:
                    return not f.read().split()
            wait_for(empty, "the test's pids cgroup to empty")
            for d in sorted((os.path.join(r, s) for r, ds, _ in os.walk(self.cg) for s in ds),
                            key=len, reverse=True):
                os.rmdir(d)
            os.rmdir(self.cg)

    def test_a_cell_running_when_its_sandbox_dies_without_a_fork_is_answered(self):
        cid = self.client.call("containers.create", name="nofork-cell")["id"]
        self.client.call("containers.exec", container_id=cid, code="x = 1")
        pid = init_pid(self.state, cid)
        caller = Client(self.sock, timeout=120)
        caller.send_raw((json.dumps({"jsonrpc": "2.0", "id": 7, "method": "containers.exec",
                                     "params": {"container_id": cid, "timeout_ms": 600000,
                                                "code": "import time\nopen('started', 'w')"
                                                        ".close()\ntime.sleep(600)"}})
                         + "\n").encode())
        data = os.path.join(self.state, "sessions", cid, "data", "started")
        wait_for(lambda: os.path.exists(data), "the cell to start")
        self.kill_without_a_fork(pid)
        # answered when the sandbox is gone, not at the cell's ten-minute timeout (the socket's
        # 120 s bound tells the two apart)
        try:
            answer = caller.read_message()
        finally:
            caller.close()
        self.assertEqual(answer["id"], 7)
        self.assertEqual(answer["result"]["status"], "failed")
        self.assertEqual(answer["result"]["error"]["ename"], "InterpreterDied")
        r = self.client.call("containers.exec", container_id=cid, code="print(2)")
        self.assertEqual(r["stdout"], "2\n")
        self.assertTrue(r["interpreter_restarted"])

    def test_teardown_without_a_fork_leaves_the_session_lock_free(self):
        cid = self.client.call("containers.create", name="nofork")["id"]
        self.client.call("containers.exec", container_id=cid, code="x = 1")
        pid = init_pid(self.state, cid)
        lockfile = os.path.join(self.state, "sessions", cid, ".worker-lock")
        self.kill_without_a_fork(pid)
        fd = os.open(lockfile, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            lock_free = True
        except OSError as e:
            self.assertIn(e.errno, (errno.EAGAIN, errno.EACCES))
            lock_free = False
        finally:
            os.close(fd)
        # the session's next worker (the delete's stop worker) must not wait for the shim's own
        # lock, nor the shim, at SIGTERM, for that worker
        before = self.workers()
        self.client.call("containers.delete", container_id=cid)
        workers = self.workers() - before
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
            stopped = True
        except subprocess.TimeoutExpired:
            stopped = False
            self.proc.kill()  # its lock goes with it: the stop worker then finishes alone
            self.proc.wait()
            for w in workers:
                wait_for(lambda: gone(w), "the orphaned stop worker to finish")
            unmount_under(os.path.join(self.state, "images"))
        self.proc = None
        self.assertTrue(lock_free, "the session lock is free after a teardown in the loop")
        self.assertTrue(stopped, "SIGTERM ended the shim")
