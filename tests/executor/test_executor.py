"""End-to-end tests of shim/executor/executor.py over its unix socket.

Run from the repository root:
    /usr/bin/python3 -m unittest discover -s tests/executor -v
EXECUTOR may point at another executor.py; PYTHON at another interpreter (default: this one).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Any, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXECUTOR = os.environ.get("EXECUTOR", os.path.join(REPO, "shim", "executor", "executor.py"))
PYTHON = os.environ.get("PYTHON", sys.executable)
OUTPUT_LIMIT = 100_000


def matplotlib_missing_reason() -> Optional[str]:
    probe = subprocess.run([PYTHON, "-c", "import matplotlib"], capture_output=True, text=True)
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines() or ["unknown error"]
    return f"matplotlib is not importable by {PYTHON}: {lines[-1]}"


class Client:
    def __init__(self, path: str, timeout: float = 20.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.buf = b""
        self.pending: list[dict] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, obj: dict) -> None:
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def recv(self) -> dict:
        if self.pending:
            return self.pending.pop(0)
        return self._read_line()

    def _read_line(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("executor closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, obj: dict) -> tuple[dict, list[dict]]:
        """Send a request; return its final line and the stream lines before it.  Lines of
        other requests that come first (an earlier cell's result) wait for recv()."""
        self.send(obj)
        streams = []
        while True:
            line = self._read_line()
            if line.get("event") == "stream":
                streams.append(line)
                continue
            if "id" in obj and line.get("id") != obj["id"]:
                self.pending.append(line)
                continue
            return line, streams

    def close(self) -> None:
        self.sock.close()


class ExecutorTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="capsule-exec-")
        self.data = os.path.join(self.tmp, "data")
        self.sock_path = os.path.join(self.tmp, "executor.sock")
        self.log_path = os.path.join(self.tmp, "executor.log")
        self.log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [PYTHON, EXECUTOR, "--socket", self.sock_path, "--data-dir", self.data,
             "--max-frame", str(1024 * 1024), "--output-limit", str(OUTPUT_LIMIT)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.client = self.connect()
        self.ready_seconds = time.monotonic() - self.started

    def tearDown(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def connect(self) -> Client:
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                self.fail(f"executor exited with {self.proc.returncode}: {self.read_log()}")
            try:
                return Client(self.sock_path)
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    self.fail("executor socket did not appear within 10 s")
                time.sleep(0.002)

    def read_log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def execute(self, code: str, client: Optional[Client] = None, **extra: Any) -> dict:
        line, _ = (client or self.client).call({"id": "x", "method": "execute", "code": code,
                                                **extra})
        self.assertEqual(line["event"], "result", line)
        return line

    def assert_alive(self) -> None:
        line, _ = self.client.call({"id": "alive", "method": "ping"})
        self.assertEqual(line["event"], "reply")
        self.assertEqual(line["pid"], self.proc.pid)
        self.assertIsNone(self.proc.poll())

    # -- start-up and basics

    def test_socket_ready_and_nothing_printed(self) -> None:
        # a bound against hanging, not a speed target (scripts/bench-shim measures start-up)
        self.assertLess(self.ready_seconds, 15.0, "the socket never appeared")
        self.assertEqual(self.read_log(), "")
        self.assertEqual(os.listdir(self.tmp).count("executor.sock"), 1)
        self.assertFalse([n for n in os.listdir(self.tmp) if n.endswith(".tmp")])

    def test_ping(self) -> None:
        line, _ = self.client.call({"id": 7, "method": "ping"})
        self.assertEqual(line, {"id": 7, "event": "reply", "pid": self.proc.pid,
                                "python": line["python"], "execution_count": 0, "busy": False})
        self.assertEqual(line["python"].split(".")[0], "3")

    def test_variables_persist_and_last_expression(self) -> None:
        first = self.execute("x = 41\ndef f(v):\n    return v + 1")
        self.assertEqual(first["status"], "ok")
        self.assertIsNone(first["result"])
        second = self.execute("f(x)")
        self.assertEqual(second["result"], "42")
        self.assertEqual(second["execution_count"], 2)
        self.assertEqual(self.execute("_ * 2")["result"], "84")
        self.assertEqual(self.execute("'a' + 'b'")["result"], "'ab'")
        self.assertIsNone(self.execute("None")["result"])
        self.assertIsNone(self.execute("x + 1;")["result"], "trailing ';' hides the value")
        self.assertEqual(self.execute("__name__")["result"], "'__main__'")

    def test_cwd_is_data_dir_and_pickle_of_user_class(self) -> None:
        self.assertEqual(self.execute("import os; os.getcwd()")["result"], repr(self.data))
        line = self.execute("import pickle\nclass P: pass\ntype(pickle.loads(pickle.dumps(P()))).__name__")
        self.assertEqual(line["status"], "ok", line["error"])
        self.assertEqual(line["result"], "'P'")

    def test_stdout_stderr_and_subprocess_output(self) -> None:
        line = self.execute("import sys, os\nprint('hello')\nprint('oops', file=sys.stderr)\n"
                            "os.system('echo from-shell; echo shell-err >&2')\nprint('after')")
        self.assertEqual(line["status"], "ok")
        self.assertEqual(line["stdout"], "hello\nfrom-shell\nafter\n")
        self.assertEqual(line["stderr"], "oops\nshell-err\n")

    def test_output_truncated(self) -> None:
        line = self.execute("import sys\nprint('x' * 300_000)\nsys.stderr.write('e' * 10)")
        out = line["stdout"]
        self.assertEqual(out[:OUTPUT_LIMIT], "x" * OUTPUT_LIMIT)
        self.assertEqual(out[OUTPUT_LIMIT:],
                         f"\n[output truncated: 200001 more characters not shown, "
                         f"limit {OUTPUT_LIMIT}]\n")
        self.assertEqual(line["stderr"], "e" * 10)

    def test_top_level_await(self) -> None:
        line = self.execute("import asyncio\nasync def g():\n    return 5\nawait g()")
        self.assertEqual(line["status"], "ok", line["error"])
        self.assertEqual(line["result"], "5")

    # -- errors

    def test_exception_traceback_shows_only_user_code(self) -> None:
        line = self.execute("def boom():\n    raise ValueError('bad value')\n\nboom()")
        self.assertEqual(line["status"], "error")
        error = line["error"]
        self.assertEqual(error["ename"], "ValueError")
        self.assertEqual(error["evalue"], "bad value")
        text = "\n".join(error["traceback"])
        self.assertIn('File "<cell 1>", line 4, in <module>', text)
        self.assertIn("    raise ValueError('bad value')", text)
        self.assertNotIn("executor.py", text)
        self.assertEqual(error["traceback"][-1], "ValueError: bad value")
        self.assertEqual(self.execute("boom.__name__")["result"], "'boom'")

    def test_syntax_error(self) -> None:
        line = self.execute("x = 1\ndef f(:\n    pass")
        self.assertEqual(line["status"], "error")
        self.assertEqual(line["error"]["ename"], "SyntaxError")
        text = "\n".join(line["error"]["traceback"])
        self.assertIn('File "<cell 1>", line 2', text)
        self.assertNotIn("executor.py", text)
        self.assertEqual(self.execute("'x' in globals()")["result"], "False")

    def test_input_raises_quickly(self) -> None:
        started = time.monotonic()
        line = self.execute("name = input('your name? ')")
        self.assertLess(time.monotonic() - started, 2)
        self.assertEqual(line["error"]["ename"], "EOFError")
        self.assertIn("input() is not available", line["error"]["evalue"])
        self.assertNotIn("executor.py", "\n".join(line["error"]["traceback"]))
        stdin = self.execute("import sys\nsys.stdin.read()")
        self.assertEqual(stdin["error"]["ename"], "EOFError")
        shell = self.execute("import subprocess\n"
                             "subprocess.run(['cat'], capture_output=True, timeout=5).stdout")
        self.assertEqual(shell["result"], "b''", "subprocesses read an empty stdin")

    def test_sys_exit_is_an_error_and_executor_lives(self) -> None:
        self.execute("kept = 'yes'")
        line = self.execute("import sys\nsys.exit(3)")
        self.assertEqual(line["status"], "error")
        self.assertEqual(line["error"]["ename"], "SystemExit")
        self.assertEqual(line["error"]["evalue"], "3")
        self.assertEqual(self.execute("raise SystemExit('bye')")["error"]["ename"], "SystemExit")
        self.assert_alive()
        self.assertEqual(self.execute("kept")["result"], "'yes'")

    # -- streaming

    def test_stream_events(self) -> None:
        code = ("import sys, time\nfor i in range(3):\n    print('tick', i, flush=True)\n"
                "    time.sleep(0.15)\nprint('warn', file=sys.stderr)")
        line, streams = self.client.call({"id": "s1", "method": "execute", "code": code,
                                          "stream": True})
        self.assertEqual(line["status"], "ok")
        self.assertGreaterEqual(len(streams), 3, "output should arrive while the cell runs")
        self.assertTrue(all(s["id"] == "s1" for s in streams))
        out = "".join(s["text"] for s in streams if s["name"] == "stdout")
        err = "".join(s["text"] for s in streams if s["name"] == "stderr")
        self.assertEqual(out, "tick 0\ntick 1\ntick 2\n")
        self.assertEqual(err, "warn\n")
        self.assertEqual(line["stdout"], out)
        self.assertEqual(line["stderr"], err)

    def test_no_stream_events_without_stream(self) -> None:
        line, streams = self.client.call({"id": 1, "method": "execute", "code": "print(1)"})
        self.assertEqual(streams, [])
        self.assertEqual(line["stdout"], "1\n")

    # -- files and figures

    def test_files_created_and_changed_are_reported(self) -> None:
        with open(os.path.join(self.data, "old.txt"), "w") as f:
            f.write("old")
        with open(os.path.join(self.data, "untouched.txt"), "w") as f:
            f.write("same")
        os.symlink("/etc/hostname", os.path.join(self.data, "link"))
        line = self.execute("import os\nos.makedirs('sub', exist_ok=True)\n"
                            "open('sub/new.csv', 'w').write('a,b\\n1,2\\n')\n"
                            "open('old.txt', 'a').write(' and new')")
        self.assertEqual(line["status"], "ok", line["error"])
        files = {f["path"]: f for f in line["files"]}
        self.assertEqual(sorted(files), [os.path.join(self.data, "old.txt"),
                                         os.path.join(self.data, "sub", "new.csv")])
        self.assertEqual(files[os.path.join(self.data, "sub", "new.csv")]["bytes"], 8)
        self.assertEqual(files[os.path.join(self.data, "old.txt")]["bytes"], 11)
        self.assertGreater(files[os.path.join(self.data, "old.txt")]["mtime"], 1e9)
        self.assertEqual(self.execute("x = 1")["files"], [])

    def test_matplotlib_figure_saved_and_reported(self) -> None:
        reason = matplotlib_missing_reason()
        if reason:
            self.skipTest(reason)
        with open(os.path.join(self.data, "figure-1-1.png"), "wb") as f:
            f.write(b"user file")
        line = self.execute("import matplotlib.pyplot as plt\n"
                            "plt.plot([1, 2, 3], [4, 1, 9])\nplt.title('t')\n"
                            "plt.figure(); plt.bar(['a', 'b'], [1, 2])\nplt.show()\n"
                            "import matplotlib; matplotlib.get_backend()")
        self.assertEqual(line["status"], "ok", line["error"])
        self.assertEqual(line["result"].lower(), "'agg'")
        self.assertEqual(len(line["images"]), 2, line)
        with open(os.path.join(self.data, "figure-1-1.png"), "rb") as f:
            self.assertEqual(f.read(), b"user file", "a user's file must not be overwritten")
        for image in line["images"]:
            self.assertTrue(image["path"].startswith(self.data + "/figure-1-"))
            with open(image["path"], "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertEqual(os.path.getsize(image["path"]), image["bytes"])
        self.assertEqual(line["files"], [], "figures are reported as images, not files")
        self.assertEqual(self.execute("plt.get_fignums()")["result"], "[]")
        self.assertEqual(self.execute("x = 1")["images"], [])

    # -- interrupts

    def test_sigint_interrupts_cell_and_keeps_namespace(self) -> None:
        self.execute("kept = 123")
        self.client.send({"id": "loop", "method": "execute", "code": "while True: pass"})
        self.wait_busy()
        time.sleep(0.1)
        os.kill(self.proc.pid, signal.SIGINT)
        line = self.client.recv()
        self.assertEqual(line["id"], "loop")
        self.assertEqual(line["status"], "interrupted")
        self.assertEqual(line["error"]["ename"], "KeyboardInterrupt")
        self.assertEqual(self.execute("kept")["result"], "123")

    def test_interrupt_method_and_sleep(self) -> None:
        self.client.send({"id": "sleep", "method": "execute", "code": "import time\ntime.sleep(60)"})
        self.wait_busy()
        time.sleep(0.1)
        reply, _ = self.client.call({"id": "int", "method": "interrupt"})
        self.assertEqual(reply, {"id": "int", "event": "reply", "interrupted": True})
        line = self.client.recv()
        self.assertEqual((line["id"], line["status"]), ("sleep", "interrupted"))

    def test_sigint_while_idle_is_ignored(self) -> None:
        os.kill(self.proc.pid, signal.SIGINT)
        time.sleep(0.2)
        self.assert_alive()
        self.assertEqual(self.execute("1 + 1")["result"], "2")

    def wait_busy(self) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            # ping answers while a cell runs; its reply may come before the cell's result.
            self.client.send({"id": "busy?", "method": "ping"})
            line = self.client.recv()
            self.assertEqual(line["id"], "busy?")
            if line["busy"]:
                return
            time.sleep(0.01)
        self.fail("executor never became busy")

    # -- protocol robustness

    def test_malformed_json_is_an_error_and_connection_survives(self) -> None:
        self.client.send_raw(b"{not json\n")
        line = self.client.recv()
        self.assertEqual(line["event"], "error")
        self.assertEqual(line["error"]["code"], "parse_error")
        self.assertIsNone(line["id"])
        self.client.send_raw(b"[1, 2]\n\xff\xfe\n")
        self.assertEqual(self.client.recv()["error"]["code"], "invalid_request")
        self.assertEqual(self.client.recv()["error"]["code"], "parse_error")
        self.client.send({"id": [1], "method": "ping"})
        self.assertEqual(self.client.recv()["error"]["code"], "invalid_request")
        self.client.send({"id": 5})
        self.assertEqual(self.client.recv(), {"id": 5, "event": "error", "error": {
            "code": "invalid_request", "message": "\"method\" must be a string"}})
        self.client.send({"id": 6, "method": "execute", "code": 12})
        self.assertEqual(self.client.recv()["error"]["code"], "invalid_params")
        self.assert_alive()

    def test_unknown_method(self) -> None:
        line, _ = self.client.call({"id": "u", "method": "frobnicate"})
        self.assertEqual(line["event"], "error")
        self.assertEqual(line["id"], "u")
        self.assertEqual(line["error"]["code"], "method_not_found")
        self.assertIn("frobnicate", line["error"]["message"])
        self.assert_alive()

    def test_oversized_frame(self) -> None:
        big = json.dumps({"id": 1, "method": "execute", "code": "x = '" + "a" * 1_500_000 + "'"})
        self.client.send_raw(big.encode() + b"\n")
        line = self.client.recv()
        self.assertEqual(line["event"], "error")
        self.assertEqual(line["error"]["code"], "frame_too_large")
        self.assertEqual(self.execute("'x' in globals()")["result"], "False")
        self.assert_alive()

    GATED = ("import os, time\n"
             "while not os.path.exists('gate'):\n"
             "    time.sleep(0.01)\n")

    def open_gate(self) -> None:
        open(os.path.join(self.data, "gate"), "w").close()

    def test_execute_while_busy_is_refused(self) -> None:
        # the first cell runs until the test opens its gate: no race with a sleep
        self.client.send({"id": "slow", "method": "execute", "code": self.GATED})
        self.wait_busy()
        self.client.send({"id": "second", "method": "execute", "code": "1"})
        refused = self.client.recv()
        self.assertEqual((refused["id"], refused["error"]["code"]), ("second", "busy"))
        self.open_gate()
        self.assertEqual(self.client.recv()["id"], "slow")

    def test_reset(self) -> None:
        self.execute("gone = 1")
        reply, _ = self.client.call({"id": "r", "method": "reset"})
        self.assertEqual(reply, {"id": "r", "event": "reply", "reset": True})
        self.assertEqual(self.execute("'gone' in globals()")["result"], "False")

    # -- priming (a warm sandbox, before anyone's session)

    def test_prime_imports_and_leaves_no_trace(self) -> None:
        slow = Client(self.sock_path, timeout=300)  # a bound, not a speed target
        reply, _ = slow.call({"id": "p", "method": "prime", "plot": True,
                                     "modules": ["json", "numpy", "matplotlib.pyplot",
                                                 "no_such_module_here"]})
        self.assertEqual(reply["event"], "reply", reply)
        self.assertEqual(reply["primed"], ["json", "numpy", "matplotlib.pyplot"])
        self.assertEqual(reply["failed"], ["no_such_module_here"])
        self.assertGreater(reply["ms"], 0)
        # a fresh session to the user: count 1, an empty namespace, no files, no figures, and
        # nothing of the failed import left behind as "the last exception"
        first = self.execute("sorted(k for k in globals() if not k.startswith('__'))", client=slow)
        self.assertEqual(first["execution_count"], 1)
        self.assertEqual(first["result"], "[]")
        self.assertEqual(first["stdout"] + first["stderr"], "")
        self.assertEqual(os.listdir(self.data), [])
        after = self.execute("import sys, matplotlib.pyplot as plt\n"
                             "(plt.get_fignums(), hasattr(sys, 'last_value'), "
                             "'numpy' in sys.modules)", client=slow)
        self.assertEqual(after["result"], "([], False, True)")
        self.assertEqual(after["images"], [])
        slow.close()

    def test_prime_refuses_bad_names_and_runs_once_at_a_time(self) -> None:
        for bad in (["os; import x"], ["../x"], "numpy", [1], ["a"] * 33, [".x"], ["x" * 70]):
            reply, _ = self.client.call({"id": "b", "method": "prime", "modules": bad})
            self.assertEqual(reply["event"], "error", bad)
            self.assertEqual(reply["error"]["code"], "invalid_params", bad)
        self.client.send({"id": "g", "method": "execute", "code": self.GATED + "1"})
        self.wait_busy()
        reply, _ = self.client.call({"id": "p2", "method": "prime", "modules": ["json"]})
        self.assertEqual(reply["error"]["code"], "busy")
        self.open_gate()
        self.assertEqual(self.client.recv()["id"], "g")
        self.assert_alive()

    def test_first_execute_does_not_wait_for_the_prime(self) -> None:
        slow = Client(self.sock_path, timeout=300)
        slow.send({"id": "p", "method": "prime", "plot": True,
                   "modules": ["numpy", "pandas", "matplotlib.pyplot", "scipy"]})
        slow.send({"id": "first", "method": "execute", "code": "1 + 1"})
        lines = {}
        while len(lines) < 2:
            line = slow.recv()
            lines[line["id"]] = line
        self.assertEqual(lines["first"]["event"], "result", lines)
        self.assertEqual(lines["first"]["result"], "2")
        self.assertEqual(lines["first"]["execution_count"], 1)
        self.assertEqual(lines["p"]["event"], "reply", lines)
        # both lines came in one read, long before numpy could be imported: the prime gave way
        self.assertIn("(interrupted)", lines["p"]["failed"], lines["p"])
        self.assertEqual(self.execute("2 + 2", client=slow)["execution_count"], 2)
        slow.close()

    # -- connections

    def test_reconnect_and_last_result(self) -> None:
        # a cell whose client went away keeps running; its result goes to the client that
        # took the old one's place (the shim reconnecting), and last_result keeps it
        self.client.send({"id": "orphan", "method": "execute",
                          "code": self.GATED + "print('done')\n6 * 7"})
        self.wait_busy()
        self.client.close()
        self.client = self.connect()
        line, _ = self.client.call({"id": "p", "method": "ping"})
        self.assertTrue(line["busy"])
        self.open_gate()
        result, streams = self.client.call({"id": "p2", "method": "ping"})
        while result.get("id") != "orphan":
            result = self.client.recv()
        self.assertEqual((result["event"], result["result"], result["stdout"]),
                         ("result", "42", "done\n"))
        line, _ = self.client.call({"id": "lr", "method": "last_result"})
        last = line["last_result"]
        self.assertEqual((last["id"], last["result"]), ("orphan", "42"))
        self.assertTrue(last["delivered"])

    def test_result_while_nobody_is_connected(self) -> None:
        self.client.send({"id": "alone", "method": "execute",
                          "code": self.GATED + "open('finished', 'w').close()\n6 * 7"})
        self.wait_busy()
        self.client.close()
        # nobody is connected when it finishes: the result is kept, undelivered
        self.open_gate()
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(self.data, "finished")):
            self.assertLess(time.monotonic(), deadline, "the cell never finished")
            time.sleep(0.01)
        self.client = self.connect()
        while True:
            line, _ = self.client.call({"id": "p", "method": "ping"})
            if line.get("id") == "alone":
                # connected between the cell's end and its result: it comes here, before the
                # ping's own reply (also fine)
                self.assertEqual(line["result"], "42")
                line = self.client.recv()
            self.assertEqual(line["id"], "p")
            if not line["busy"]:
                break
            time.sleep(0.01)
        line, _ = self.client.call({"id": "lr", "method": "last_result"})
        last = line["last_result"]
        self.assertEqual((last["id"], last["result"]), ("alone", "42"))

    def test_new_connection_drops_old_one(self) -> None:
        second = self.connect()
        line, _ = second.call({"id": 2, "method": "ping"})  # accepted: the old one is gone
        # the old connection ends at once (EOF or a reset), not after a timeout
        self.client.sock.settimeout(10)
        with self.assertRaises((ConnectionError, BrokenPipeError, ConnectionResetError)):
            self.client.send({"id": 1, "method": "ping"})
            self.client.recv()
        line, _ = second.call({"id": 2, "method": "ping"})
        self.assertEqual(line["pid"], self.proc.pid)
        self.client.close()
        self.client = second


if __name__ == "__main__":
    unittest.main()
