"""containers.exec: state, output, errors, images, timeouts, OOM, hostile cells, concurrency."""

import json
import os
import threading
import time

from shimtest import Client, RpcError, ShimTestCase, wait_for


class TestExec(ShimTestCase):
    def setUp(self):
        self.cid = self.create()["id"]

    def wait_started(self):
        """The running cell made the file 'started' in /mnt/data (seen from the host)."""
        path = os.path.join(self.state, "sessions", self.cid, "data", "started")
        wait_for(lambda: os.path.exists(path), "the cell to start")

    def test_state_persists(self):
        r = self.exec(self.cid, "x = 40\nx + 2")
        self.assertEqual(r["object"], "container.execution")
        self.assertRegex(r["id"], r"^exec_[0-9a-f]{32}$")
        self.assertEqual(r["status"], "completed")
        self.assertEqual(r["result"], "42")
        self.assertEqual(r["outputs"][0], {"type": "logs", "logs": "42\n"})
        self.assertFalse(r["interpreter_restarted"])
        r2 = self.exec(self.cid, "import math\nprint(x, math.pi)")
        self.assertEqual(r2["stdout"], "40 3.141592653589793\n")
        self.assertEqual(r2["execution_count"], r["execution_count"] + 1)

    def test_exception(self):
        r = self.exec(self.cid, "def f():\n    return 1 / 0\nf()")
        self.assertEqual(r["status"], "failed")
        self.assertEqual(r["error"]["ename"], "ZeroDivisionError")
        tb = "".join(r["error"]["traceback"])
        self.assertIn("return 1 / 0", tb)
        self.assertNotIn("executor.py", tb)
        self.assertIn("ZeroDivisionError", r["outputs"][0]["logs"])
        r = self.exec(self.cid, "def broken(:")
        self.assertEqual(r["error"]["ename"], "SyntaxError")

    def test_stderr_and_stream(self):
        r = self.exec(self.cid, "import sys, time\nfor i in range(3):\n    print('line', i, flush=True)\n"
                      "    time.sleep(0.2)\nprint('oops', file=sys.stderr)", stream=True)
        self.assertEqual(r["stdout"], "line 0\nline 1\nline 2\n")
        self.assertEqual(r["stderr"], "oops\n")
        notes = [n for n in self.client.notifications if n["method"] == "exec.output"
                 and n["params"]["id"] == r["id"]]
        self.client.notifications.clear()
        self.assertGreaterEqual(len(notes), 2, "output streams while the cell runs")
        self.assertEqual("".join(n["params"]["text"] for n in notes
                                 if n["params"]["stream"] == "stdout"), r["stdout"])

    def test_nul_characters_in_output(self):
        # the executor writes them as \u0000: read as C strings, the output stopped there
        r = self.exec(self.cid, "import sys\nprint('a\\0b')\nprint('c\\0', file=sys.stderr)\n"
                      "'d\\0e'")
        self.assertEqual(r["status"], "completed", r)
        self.assertEqual(r["stdout"], "a\ufffdb\n")
        self.assertEqual(r["stderr"], "c\ufffd\n")
        self.assertEqual(r["result"], "'d\\x00e'")

    def test_input_does_not_hang(self):
        t = time.time()
        r = self.exec(self.cid, "input('name? ')", timeout_ms=20000)
        self.assertLess(time.time() - t, 5)
        self.assertEqual(r["status"], "failed")
        self.assertIn("no interactive stdin", r["error"]["evalue"])

    def test_matplotlib_image(self):
        r = self.exec(self.cid, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
        self.assertEqual(r["status"], "completed", r)
        images = [o for o in r["outputs"] if o["type"] == "image"]
        self.assertEqual(len(images), 1)
        png = self.download(self.cid, images[0]["file_id"])
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertIn(images[0]["file_id"], [f["id"] for f in r["files"]])

    def test_created_files_reported(self):
        r = self.exec(self.cid, "import pandas as pd\npd.DataFrame({'a': [1, 2]}).to_csv('t.csv')\n"
                      "open('/mnt/data/sub/x.txt', 'w') if False else None\n"
                      "import os; os.makedirs('sub', exist_ok=True); open('sub/x.txt','w').write('hi')")
        paths = sorted(f["path"] for f in r["files"])
        self.assertEqual(paths, ["/mnt/data/sub/x.txt", "/mnt/data/t.csv"])
        for f in r["files"]:
            self.assertEqual(f["source"], "assistant")
            self.assertEqual(f["object"], "container.file")
            self.assertEqual(f["container_id"], self.cid)
        x = [f for f in r["files"] if f["path"].endswith("x.txt")][0]
        self.assertEqual(self.download(self.cid, x["id"]), b"hi")

    def test_timeout_interrupts_and_keeps_state(self):
        self.exec(self.cid, "kept = 'yes'")
        t = time.time()
        r = self.exec(self.cid, "while True:\n    pass", timeout_ms=800)
        self.assertLess(time.time() - t, 5)
        self.assertEqual(r["status"], "timeout")
        self.assertFalse(r["interpreter_restarted"])
        self.assertEqual(self.exec(self.cid, "kept")["result"], "'yes'")

    def test_timeout_kills_a_cell_that_ignores_interrupt(self):
        self.upload(self.cid, "survivor.txt", b"still here")
        self.exec(self.cid, "lost = 1")
        r = self.exec(self.cid, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                      "while True: time.sleep(0.01)", timeout_ms=500)
        self.assertEqual(r["status"], "timeout")
        self.assertTrue(r["interpreter_restarted"])
        self.assertIn("did not stop on interrupt", r["error"]["evalue"])
        r2 = self.exec(self.cid, "open('survivor.txt').read()")
        self.assertEqual(r2["result"], "'still here'", "files survive the restart")
        r3 = self.exec(self.cid, "lost")
        self.assertEqual(r3["error"]["ename"], "NameError", "variables do not")

    def test_interrupt_method(self):
        c2 = Client(self.socket)
        self.addCleanup(c2.close)
        out = {}
        th = threading.Thread(target=lambda: out.update(
            r=c2.call("containers.exec", container_id=self.cid,
                      code="import time\nopen('started', 'w').close()\ntime.sleep(30)")))
        th.start()
        self.wait_started()
        r = self.client.call("containers.interrupt", container_id=self.cid)
        self.assertTrue(r["interrupted"])
        th.join(10)
        self.assertEqual(out["r"]["status"], "interrupted")
        self.assertEqual(out["r"]["error"]["ename"], "KeyboardInterrupt")
        self.assertFalse(self.client.call("containers.interrupt", container_id=self.cid)["interrupted"])

    def test_reset(self):
        self.upload(self.cid, "kept.txt", b"kept")
        r = self.exec(self.cid, "lost = 1\nlost")
        self.assertEqual(r["result"], "1")
        r = self.client.call("containers.reset", container_id=self.cid)
        self.assertEqual(r, {"id": self.cid, "object": "container.reset", "reset": True})
        r = self.exec(self.cid, "lost")
        self.assertEqual(r["error"]["ename"], "NameError", "a fresh interpreter")
        self.assertTrue(r["interpreter_restarted"])
        self.assertEqual(self.exec(self.cid, "open('kept.txt').read()")["result"], "'kept'")
        # a reset while a cell runs is refused, and the cell goes on
        c2 = Client(self.socket)
        self.addCleanup(c2.close)
        out = {}
        th = threading.Thread(target=lambda: out.update(
            r=c2.call("containers.exec", container_id=self.cid,
                      code="import time\nopen('started', 'w').close()\ntime.sleep(1)\n'slept'")))
        th.start()
        self.wait_started()
        with self.assertRaises(RpcError) as e:
            self.client.call("containers.reset", container_id=self.cid)
        self.assertEqual(e.exception.data["code"], "container_busy")
        th.join(30)
        self.assertEqual(out["r"]["result"], "'slept'")
        with self.assertRaises(RpcError) as e:
            self.client.call("containers.reset", container_id="cntr_" + "0" * 32)
        self.assertEqual(e.exception.data["code"], "not_found")

    def test_out_of_memory(self):
        self.upload(self.cid, "before.txt", b"kept")
        self.exec(self.cid, "small = 1")
        r = self.exec(self.cid, "blocks = []\nwhile True:\n    blocks.append(bytearray(8 << 20))")
        self.assertEqual(r["status"], "oom", r)
        self.assertTrue(r["interpreter_restarted"])
        self.assertEqual(r["error"]["ename"], "MemoryError")
        self.assertIn("killed: out of memory (limit 160m)", r["error"]["evalue"])
        self.assertEqual(self.exec(self.cid, "open('before.txt').read()")["result"], "'kept'")
        self.assertEqual(self.exec(self.cid, "1 + 1")["result"], "2")

    def test_fork_bomb(self):
        r = self.exec(self.cid, "import os\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
                      "            import time; time.sleep(60); os._exit(0)\n        n += 1\n"
                      "except OSError as e:\n    print('stopped after', n, e.strerror)", timeout_ms=30000)
        self.assertRegex(r["stdout"], r"stopped after \d+ Resource temporarily unavailable")
        n = int(r["stdout"].split()[2])
        self.assertLess(n, 64, "the pids limit of the tier holds")
        self.assertEqual(self.client.call("shim.status")["object"], "shim.status")

    def test_no_network(self):
        import socket as pysocket
        host = pysocket.socket()
        host.bind(("127.0.0.1", 0))
        host.listen()
        self.addCleanup(host.close)
        port = host.getsockname()[1]
        r = self.exec(self.cid, f"""
import socket, os
print(sorted(os.listdir('/sys/class/net')))
s = socket.socket()
try:
    s.connect(('127.0.0.1', {port})); print('host reachable')
except OSError as e:
    print('loopback of the host:', e.strerror)
s = socket.socket()
try:
    s.connect(('192.0.2.1', 80)); print('outside reachable')
except OSError as e:
    print('outside:', e.strerror)
""")
        self.assertIn("['lo']", r["stdout"])
        self.assertIn("loopback of the host: Connection refused", r["stdout"])
        self.assertIn("outside: Network is unreachable", r["stdout"])

    def test_sandbox_identity(self):
        r = self.exec(self.cid, "import os\nprint(os.getuid(), os.getcwd(), os.getpid())\n"
                      "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
                      "print('ro' if os.statvfs('/').f_flag & os.ST_RDONLY else 'rw')")
        uid, cwd, pid = r["stdout"].split("\n")[0].split()
        self.assertEqual((uid, cwd), ("1000", "/mnt/data"))
        self.assertEqual(pid, "2", "the interpreter is pid 2 under capsule-init")
        self.assertIn("0000000000000000", r["stdout"])
        # the root: the session's own overlay of the image, or the image read-only
        root = self.client.call("shim.status")["root"]
        self.assertEqual(r["stdout"].split("\n")[2], "rw" if root == "overlay" else "ro")
        # what capsule puts there stays read-only either way
        r = self.exec(self.cid, "import errno\nout = []\n"
                      "for p in ('/.capsule/executor/executor.py', '/.capsule/init'):\n"
                      "    try:\n        open(p, 'ab')\n        out.append('written')\n"
                      "    except OSError as e:\n        out.append(errno.errorcode[e.errno])\n"
                      "out")
        self.assertEqual(r["status"], "completed", r)
        self.assertNotIn("written", r["result"])
        self.assertTrue(set(eval(r["result"])) <= {"EROFS", "EACCES"}, r)

    def test_sandbox_cannot_reach_the_shims_disk_or_stdio(self):
        r = self.exec(self.cid, "import os\n"
                      "try:\n    open('/.capsule/session/fill', 'wb').write(b'x' * (4 << 20))\n"
                      "    print('wrote')\nexcept OSError as e:\n    print(e.strerror)\n"
                      "print([(os.major(st.st_rdev), os.minor(st.st_rdev)) for st in\n"
                      "       (os.stat(f'/proc/1/fd/{n}') for n in (0, 1, 2))])")
        self.assertIn("No space left on device", r["stdout"], "the run directory is a tiny tmpfs")
        self.assertIn("[(1, 3), (1, 3), (1, 3)]", r["stdout"],
                      "the sandbox's stdio is not the shim's")

    def test_busy_session_does_not_delay_others(self):
        other = self.create(name="other")["id"]
        c2 = Client(self.socket)
        self.addCleanup(c2.close)
        th = threading.Thread(target=lambda: c2.call(
            "containers.exec", container_id=self.cid,
            code="open('started', 'w').close()\nwhile True: pass", timeout_ms=30000))
        th.start()
        self.wait_started()
        t = time.time()
        self.assertEqual(self.exec(other, "21 * 2")["result"], "42")
        self.client.call("shim.status")
        # had the shim waited on the busy cell, this would take its whole 30 s timeout
        self.assertLess(time.time() - t, 10, "a busy session delays no other call")
        self.client.call("containers.interrupt", container_id=self.cid)
        th.join(60)

    def test_queued_cells_run_in_order(self):
        # three cells sent back to back on one connection: they run one at a time, in order
        c = Client(self.socket)
        self.addCleanup(c.close)
        for i in range(3):
            c.send_raw((json.dumps({"jsonrpc": "2.0", "id": i, "method": "containers.exec",
                                    "params": {"container_id": self.cid, "code":
                                               f"import time; time.sleep(0.2); "
                                               f"seq = globals().get('seq', []) + [{i}]; seq"}})
                        + "\n").encode())
        results = {}
        while len(results) < 3:
            m = c.read_message()
            if "id" in m:
                results[m["id"]] = m["result"]
        self.assertEqual([results[i]["result"] for i in range(3)], ["[0]", "[0, 1]", "[0, 1, 2]"])
        counts = [results[i]["execution_count"] for i in range(3)]
        self.assertEqual(counts, sorted(counts))

    def test_code_limits(self):
        self.assertRpcError(lambda: self.exec(self.cid, "1", timeout_ms=0), param="timeout_ms")
        self.assertRpcError(lambda: self.exec(self.cid, "x" * (2 << 20)), code="code_too_large",
                            http=413)
