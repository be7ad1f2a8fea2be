"""The daemon itself: its socket, systemd socket activation and readiness, capsulectl, shutdown."""

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest

from shimtest import BUILD, SHIM, Client, ShimTestCase

CTL = os.path.join(BUILD, "shim", "capsulectl")


class TestDaemon(ShimTestCase):
    def test_socket_mode(self):
        mode = stat.S_IMODE(os.stat(self.socket).st_mode)
        self.assertEqual(mode, 0o660)

    def ctl(self, *args, input=None):
        return subprocess.run([CTL, "--socket", self.socket, *args], input=input,
                              capture_output=True, text=True, timeout=60)

    def test_capsulectl(self):
        r = self.ctl("create", "--name", "ctl", "--memory", "4g")
        self.assertEqual(r.returncode, 0, r.stderr)
        cid, status, tier, name = r.stdout.strip().split("\t")
        self.addCleanup(self.delete_quietly, cid)
        self.assertEqual((status, tier, name), ("running", "4g", "ctl"))
        local = os.path.join(self.work, "in.csv")
        with open(local, "w") as f:
            f.write("a,b\n1,2\n")
        r = self.ctl("upload", cid, local)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("/mnt/data/in.csv", r.stdout)
        r = self.ctl("exec", cid, "import pandas as pd\nprint(pd.read_csv('in.csv').b.sum())\n21 * 2")
        self.assertEqual((r.returncode, r.stdout), (0, "2\n42\n"), r.stderr)
        r = self.ctl("exec", cid, "-", input="raise ValueError('bad')")
        self.assertEqual(r.returncode, 3)
        self.assertIn("ValueError: bad", r.stderr)
        out = os.path.join(self.work, "imgs")
        os.makedirs(out)
        r = self.ctl("exec", "--images", out, cid,
                     "import matplotlib.pyplot as plt\nplt.plot([1, 2])")
        self.assertEqual(r.returncode, 0, r.stderr)
        pngs = os.listdir(out)
        self.assertEqual(len(pngs), 1)
        with open(os.path.join(out, pngs[0]), "rb") as f:
            self.assertEqual(f.read(4), b"\x89PNG")
        r = self.ctl("download", cid, "in.csv")
        self.assertEqual(r.stdout, "a,b\n1,2\n")
        r = self.ctl("files", cid)
        self.assertIn("/mnt/data/in.csv", r.stdout)
        r = self.ctl("--json", "status")
        self.assertIn('"object": "shim.status"', r.stdout)
        r = self.ctl("rm", cid)
        self.assertEqual(r.stdout.strip(), f"deleted {cid}")
        r = self.ctl("exec", cid, "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no container with id", r.stderr)

    def test_capsulectl_without_shim(self):
        r = subprocess.run([CTL, "--socket", "/nonexistent/sock", "status"], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is capsule-shim running?", r.stderr)


@unittest.skipUnless(shutil.which("systemd-socket-activate"), "systemd-socket-activate missing")
class TestSystemdActivation(unittest.TestCase):
    def test_socket_listens_once_it_is_there(self):
        """The path appears only when the socket listens with its mode: the first connect of a
        client that waited for the path never meets ECONNREFUSED, and no temporary name stays."""
        if os.geteuid() != 0:
            self.skipTest("needs root")
        work = tempfile.mkdtemp(prefix="capsule-shim-sock.")
        self.addCleanup(shutil.rmtree, work, True)
        sock = os.path.join(work, "shim.sock")
        for i in range(5):
            p = subprocess.Popen([SHIM, "--socket", sock, "--state-dir", os.path.join(work, "state"),
                                  "--warm", "0"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            try:
                while not os.path.exists(sock):
                    self.assertIsNone(p.poll(), "the shim died at start")
                    time.sleep(0.001)
                self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o660)
                c = Client(sock)
                self.assertEqual(c.call("shim.status")["object"], "shim.status")
                c.close()
                self.assertEqual(sorted(os.listdir(work)), ["shim.sock", "state"])
            finally:
                p.terminate()
                p.wait(30)
            self.assertFalse(os.path.exists(sock), "the socket goes with the shim")

    def test_listen_fds_and_ready(self):
        if os.geteuid() != 0:
            self.skipTest("needs root")
        work = tempfile.mkdtemp(prefix="capsule-shim-sd.")
        os.chmod(work, 0o755)
        self.addCleanup(shutil.rmtree, work, True)
        sock = os.path.join(work, "activated.sock")
        notify = os.path.join(work, "notify.sock")
        ready = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ready.bind(notify)
        ready.settimeout(20)
        env = dict(os.environ, NOTIFY_SOCKET=notify)
        p = subprocess.Popen(["systemd-socket-activate", "-l", sock, "-E", "NOTIFY_SOCKET",
                              SHIM, "--state-dir", os.path.join(work, "state"), "--warm", "0"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            for _ in range(200):
                if os.path.exists(sock):
                    break
                time.sleep(0.02)
            c = Client(sock)  # the first connection makes systemd-socket-activate start the shim
            self.assertEqual(c.call("shim.status")["object"], "shim.status")
            msg = ready.recv(256)
            self.assertEqual(msg, b"READY=1")
            c.close()
        finally:
            p.terminate()
            p.wait(30)
            ready.close()
