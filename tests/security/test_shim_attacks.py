"""Attacks on capsule-shim, written as the attacker would make them: from a cell (the model's code
can reach the executor's socket, plant any file name, fill any limit) and from a client of the
shim's socket.  Each must leave the shim up and answering everyone, its answers true and valid
JSON, and nothing already stored lost.  Every one of these failed on the shim before the fixes
its comment names."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from shimtest import Client, RestartTestCase, ShimTestCase, gone, init_pid, wait_for

# The executor's own connection to the shim, found from user code the way an attacker would.
FIND_CHANNEL = """
import gc, socket
def _channel():
    for o in gc.get_objects():
        if isinstance(o, socket.socket) and o.family == socket.AF_UNIX and o.fileno() >= 0:
            try:
                o.getpeername()
            except OSError:
                continue
            yield o
"""

# The id of the request the running cell answers (the executor's frame holds it).
FIND_REQUEST_ID = """
import sys
def _request_id():
    f = sys._getframe()
    while f is not None:
        if 'req_id' in f.f_locals and isinstance(f.f_locals['req_id'], str):
            return f.f_locals['req_id']
        f = f.f_back
"""


def raw_call(path, line: bytes, timeout=60):
    """Send one raw line on a fresh connection; return the raw answer line (bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(line)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    s.close()
    return buf


class TestCellAttacks(ShimTestCase):
    def setUp(self):
        self.cid = self.create()["id"]

    def assert_shim_answers(self):
        """Another client gets its answer, and the shim process lives."""
        other = Client(self.socket, timeout=30)
        try:
            st = other.call("shim.status")
            self.assertEqual(st["object"], "shim.status")
        finally:
            other.close()
        self.assertIsNone(self.proc.poll(), "the shim died")

    def test_deep_nesting_through_the_executor_channel(self):
        # 300,000 nested brackets took yajl_tree_free off the stack: SIGSEGV for every tenant
        r = self.exec(self.cid, FIND_CHANNEL + """
n = 0
for s in _channel():
    s.sendall(b'[' * 300000 + b']' * 300000 + b'\\n')
    n += 1
n""")
        self.assertEqual(r["status"], "completed", r)
        self.assertNotEqual(r["result"], "0", "the cell found its channel")
        self.assert_shim_answers()
        self.assertEqual(self.exec(self.cid, "21 * 2")["result"], "42", "the session still works")

    def test_newline_flood_through_the_executor_channel(self):
        # the line reader moved its buffer once per line: 64 MiB of newlines cost the loop
        # minutes, and every other session waited
        done = threading.Event()
        result = {}

        def flood():
            c = Client(self.socket, timeout=300)
            try:
                result["r"] = c.call(
                    "containers.exec", container_id=self.cid, code=FIND_CHANNEL + """
for s in _channel():
    for _ in range(64):
        s.sendall(b'\\n' * (1 << 20))
""")
            finally:
                c.close()
            done.set()

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        started = time.monotonic()
        self.assert_shim_answers()
        done.wait(300)
        self.assertTrue(done.is_set(), "the flooding cell never finished")
        self.assertEqual(result["r"]["status"], "completed")
        self.assertLess(time.monotonic() - started, 120, "the flood did not stall the loop")

    def test_outputs_cannot_be_forged_from_stdout(self):
        # the execution object was spliced together at a marker that user text could hold
        for marker in ("@OUTPUTS@", "@FILES@"):
            r = self.exec(self.cid, f"print({marker!r}, end='')")
            self.assertEqual(r["stdout"], marker)
            self.assertIsInstance(r["outputs"], list)
            self.assertIsInstance(r["files"], list)
            self.assertEqual(r["outputs"][0], {"type": "logs", "logs": marker})

    def test_file_names_that_are_not_utf8(self):
        # files.list answered raw bytes that are not UTF-8: strict clients failed on the line
        r = self.exec(self.cid, "open(b'\\xff\\xfe.bin', 'wb').write(b'payload')")
        self.assertEqual(r["status"], "completed")
        reported = [f for f in r["files"] if f["path"].endswith(".bin")]
        self.assertEqual(len(reported), 1, r["files"])
        raw = raw_call(self.socket, json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "files.list",
             "params": {"container_id": self.cid}}).encode() + b"\n")
        listing = json.loads(raw.decode("utf-8"))  # strict: raises on invalid UTF-8
        files = [f for f in listing["result"]["data"] if f["path"].endswith(".bin")]
        self.assertEqual(len(files), 1, listing)
        self.assertEqual(files[0]["path"], "/mnt/data/\ufffd\ufffd.bin")
        self.assertEqual(files[0]["id"], reported[0]["id"], "the executor and the walk agree")
        self.assertEqual(self.download(self.cid, files[0]["id"]), b"payload")

    def test_forged_busy_cannot_outlive_the_timeout(self):
        # a forged "busy" re-queued the cell with a fresh deadline: it never timed out and the
        # session never expired
        t = time.monotonic()
        r = self.exec(self.cid, FIND_CHANNEL + FIND_REQUEST_ID + """
import json, signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
rid = _request_id()
line = json.dumps({'id': rid, 'event': 'error', 'error': {'code': 'busy', 'message': 'x'}})
while True:
    for s in _channel():
        try:
            s.sendall(line.encode() + b'\\n')
        except OSError:
            pass
    time.sleep(0.05)
""", timeout_ms=1500)
        self.assertEqual(r["status"], "timeout", r)
        self.assertTrue(r["interpreter_restarted"])
        self.assertLess(time.monotonic() - t, 60)
        self.assertEqual(self.exec(self.cid, "1 + 1")["result"], "2")

    def test_forged_result_listing_one_path_many_times(self):
        # each listed path was written into the answer once per mention
        r = self.exec(self.cid, FIND_CHANNEL + FIND_REQUEST_ID + """
import json
open('x', 'w').write('x')
forged = {'id': _request_id(), 'event': 'result', 'status': 'ok', 'execution_count': 1,
          'stdout': 'forged', 'stderr': '', 'result': None, 'error': None, 'images': [],
          'files': [{'path': 'x', 'bytes': 1}] * 150000}
for s in _channel():
    s.sendall(json.dumps(forged).encode() + b'\\n')
""")
        self.assertEqual([f["path"] for f in r["files"]], ["/mnt/data/x"])
        self.assert_shim_answers()

    def test_forged_lines_with_nul(self):
        # a NUL byte ended the parse of a line, what followed it unread; a \u0000 cut a path
        r = self.exec(self.cid, FIND_CHANNEL + FIND_REQUEST_ID + """
import json
open('x', 'w').write('x')
forged = {'id': _request_id(), 'event': 'result', 'status': 'ok', 'execution_count': 1,
          'stdout': 'first', 'stderr': '', 'result': None, 'error': None, 'images': [],
          'files': []}
for s in _channel():
    s.sendall(json.dumps(forged).encode() + b'\\0' + b' {"more": 1}\\n')
    forged.update(stdout='second\\0hidden', files=[{'path': 'x\\0/../../../etc/passwd', 'bytes': 1}])
    s.sendall(json.dumps(forged).encode() + b'\\n')
""")
        self.assertEqual(r["stdout"], "second\ufffdhidden", "the line with a NUL byte was taken")
        for f in r["files"]:
            self.assertTrue(f["path"].startswith("/mnt/data/"), r["files"])
            self.assertNotIn("passwd", f["path"], r["files"])
        self.assert_shim_answers()
        self.assertEqual(self.exec(self.cid, "6 * 7")["result"], "42", "the session still works")

    def test_deep_tree_does_not_stall_the_loop(self):
        # files.list walked a 3,000-deep tree of long names inside the loop (seconds of string
        # copying, quadratic in the depth): other clients waited
        r = self.exec(self.cid, """
import os
top = os.open('.', os.O_RDONLY)
os.makedirs('a/b/c', exist_ok=True)
open('a/b/c/shallow.txt', 'w').write('s')
os.mkdir('deep')
os.chdir('deep')
for i in range(6000):
    os.mkdir('d' * 200)
    os.chdir('d' * 200)
open('bottom.txt', 'w').write('b')
os.fchdir(top)
""", timeout_ms=120000)
        self.assertEqual(r["status"], "completed", r)
        done = {}

        def listing():
            c = Client(self.socket, timeout=300)
            done["files"] = c.call("files.list", container_id=self.cid, limit=100)
            c.close()

        t = threading.Thread(target=listing, daemon=True)
        t.start()
        started = time.monotonic()
        self.assert_shim_answers()
        waited = time.monotonic() - started
        t.join(300)
        paths = [f["path"] for f in done["files"]["data"]]
        self.assertIn("/mnt/data/a/b/c/shallow.txt", paths)
        self.assertNotIn("bottom.txt", " ".join(paths), "no path longer than the API allows")
        self.assertLess(waited, 4, "another client waited on the walk")

    def test_no_setuid_anywhere(self):
        # no_new_privs is per thread, and a restore from a checkpoint gives it back only to the
        # thread that runs cells: a thread the cell left running must still gain nothing from a
        # setuid or file-capability binary. Every mount in the sandbox is nosuid.
        r = self.exec(self.cid, """
out = []
for line in open('/proc/self/mountinfo'):
    f = line.split()
    opts = f[5].split(',')
    if 'nosuid' not in opts:
        out.append(f[4])
out""")
        self.assertEqual(r["status"], "completed", r)
        self.assertEqual(eval(r["result"]), [], "mounts without nosuid")

    def test_no_vsock_or_other_families(self):
        # network namespaces do not cover vsock: a sandbox reached the hypervisor host's
        r = self.exec(self.cid, """
import errno, socket
out = {}
for name, fam, typ, *proto in [('vsock', 40, socket.SOCK_STREAM), ('alg', 38, socket.SOCK_SEQPACKET),
                       ('packet', 17, socket.SOCK_RAW), ('key', 15, socket.SOCK_RAW),
                       ('unix', socket.AF_UNIX, socket.SOCK_STREAM),
                       ('inet', socket.AF_INET, socket.SOCK_STREAM),
                       ('inet6', socket.AF_INET6, socket.SOCK_STREAM),
                       ('netlink_route', socket.AF_NETLINK, socket.SOCK_RAW, 0),
                       ('netlink_audit', socket.AF_NETLINK, socket.SOCK_RAW, 9)]:
    try:
        socket.socket(fam, typ, *proto).close()
        out[name] = 'ok'
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
out""")
        got = eval(r["result"])
        self.assertEqual(got["vsock"], "EAFNOSUPPORT", got)
        for name in ("alg", "packet", "key", "netlink_audit"):
            self.assertIn(got[name], ("EAFNOSUPPORT", "EPERM", "EACCES"), got)
        for name in ("unix", "inet", "inet6", "netlink_route"):
            self.assertEqual(got[name], "ok", got)

    def test_no_other_abi_around_the_filter(self):
        # the filter judges x86_64 syscalls; an x32 syscall number or an i386 `int 0x80` from
        # the same process must not reach a socket() the native rules would refuse
        r = self.exec(self.cid, r"""
import subprocess, sys
x32 = '''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
print(libc.syscall(0x40000000 + 41, 40, 1, 0))
'''
i386 = '''
import ctypes, mmap
# push rbx; mov eax, 359 (i386 socket); mov ebx, 40 (AF_VSOCK); mov ecx, 1; xor edx, edx;
# int 0x80; pop rbx; ret
code = bytes.fromhex('53b867010000bb28000000b90100000031d2cd805bc3')
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
print(ctypes.CFUNCTYPE(ctypes.c_int)(addr)())
'''
out = {}
for name, prog in (('x32', x32), ('i386', i386)):
    p = subprocess.run([sys.executable, '-c', prog], capture_output=True, text=True)
    out[name] = (p.returncode, p.stdout.strip())
out""")
        got = eval(r["result"])
        for name, (rc, out) in got.items():
            # killed by SIGSYS, or a negative errno: never a descriptor
            self.assertTrue(rc == -31 or (rc == 0 and int(out) < 0), (name, rc, out))


class TestClientAttacks(ShimTestCase):
    def test_deep_nesting_from_a_client(self):
        line = b"[" * 300000 + b"]" * 300000 + b"\n"
        answer = json.loads(raw_call(self.socket, line))
        self.assertEqual(answer["error"]["data"]["code"], "nesting_too_deep")
        self.assertEqual(answer["error"]["data"]["http_status"], 400)
        # the same connection stays usable after the refusal
        c = Client(self.socket)
        c.send_raw(b'{"jsonrpc":"2.0","id":1,"method":"x","params":' + b"[" * 1000 + b"]" * 1000
                   + b"}\n")
        self.assertEqual(c.read_message()["error"]["data"]["code"], "nesting_too_deep")
        self.assertEqual(c.call("shim.status")["object"], "shim.status")
        c.close()

    def test_too_many_values_from_a_client(self):
        line = b'{"jsonrpc":"2.0","id":1,"method":"shim.status","params":{"a":[' + b"0," * 1200000 \
            + b"0]}}\n"
        answer = json.loads(raw_call(self.socket, line))
        self.assertEqual(answer["error"]["data"]["code"], "message_too_large")
        self.assertEqual(self.client.call("shim.status")["object"], "shim.status")

    def test_invalid_utf8_from_a_client(self):
        answer = raw_call(self.socket, b'{"jsonrpc":"2.0","id":1,"method":"\xff"}\n')
        msg = json.loads(answer.decode("utf-8"))
        self.assertEqual(msg["error"]["code"], -32700)

    def test_another_tenants_container_does_not_exist(self):
        mine = self.create(tenant="alice")
        self.assertRpcError(lambda: self.client.call("containers.retrieve",
                                                     container_id=mine["id"], tenant="mallory"),
                            code="not_found", http=404)
        self.assertRpcError(lambda: self.client.call("containers.exec", container_id=mine["id"],
                                                     code="1", tenant="mallory"),
                            code="not_found", http=404)
        self.assertRpcError(lambda: self.client.call("containers.delete", container_id=mine["id"],
                                                     tenant="mallory"),
                            code="not_found", http=404)
        self.assertRpcError(lambda: self.client.call("files.list", container_id=mine["id"]),
                            code="not_found", http=404)
        ids = [c["id"] for c in self.client.call("containers.list", tenant="mallory")["data"]]
        self.assertNotIn(mine["id"], ids)
        ids = [c["id"] for c in self.client.call("containers.list", tenant="alice")["data"]]
        self.assertIn(mine["id"], ids)


class TestRestartAttacks(RestartTestCase):
    def record_path(self, cid):
        return os.path.join(self.state, "sessions", cid, "record.json")

    def test_non_utf8_name_survives_a_restart(self):
        cid = self.client.call("containers.create", name="bytes")["id"]
        r = self.client.call("containers.exec", container_id=cid,
                             code="open(b'\\xff\\xfe.bin', 'wb').write(b'kept')\nv = 7")
        fid = [f["id"] for f in r["files"] if f["path"].endswith(".bin")][0]
        self.stop(signal.SIGKILL)
        self.start()
        got = self.client.call("containers.retrieve", container_id=cid)
        self.assertEqual(got["status"], "running")
        self.assertEqual(self.client.call("containers.exec", container_id=cid, code="v")["result"],
                         "7")
        content = self.client.call("files.content", container_id=cid, file_id=fid)
        self.assertEqual(base64.b64decode(content["content"]), b"kept")

    def broken_record_ends_honestly(self, spoil):
        cid = self.client.call("containers.create", name="spoiled")["id"]
        self.client.call("containers.exec", container_id=cid, code="x = 1")
        pid = init_pid(self.state, cid)
        self.stop(signal.SIGKILL)
        spoil(self.record_path(cid))
        self.start()
        # never an orphan: its sandbox is gone, its workspace unmounted, nothing charged
        wait_for(lambda: gone(pid), "the sandbox of the unreadable record to be removed")
        def unmounted():
            with open("/proc/self/mountinfo") as f:
                return cid not in f.read()
        wait_for(unmounted, "its workspace to be unmounted")
        got = self.client.call("containers.retrieve", container_id=cid)
        self.assertEqual(got["status"], "expired")
        self.assertEqual([p for p in self.client.call("shim.status")["pools"]
                          if p["used_bytes"] > 0], [])
        self.assertIn(cid, self.shim_log())

    def test_record_with_invalid_bytes(self):
        def spoil(path):
            with open(path, "r+b") as f:
                data = f.read()
                f.seek(0)
                f.write(data.replace(b'"spoiled"', b'"\xff\xfe"'))
        self.broken_record_ends_honestly(spoil)

    def test_record_past_its_size_cap(self):
        def spoil(path):
            with open(path, "ab") as f:
                f.write(b" " * (65 << 20))
        self.broken_record_ends_honestly(spoil)

    def test_stuck_workers_of_a_dead_shim_delay_the_start_once(self):
        # a dead shim's workers that never finish (here: a process holding two sessions'
        # worker locks) cost the next shim's start one wait, not one for each session, and
        # the sessions are taken up after it
        ids = []
        for name in ("stuck-a", "stuck-b"):
            cid = self.client.call("containers.create", name=name)["id"]
            self.client.call("containers.exec", container_id=cid, code=f"v = {name!r}")
            ids.append(cid)
        self.stop(signal.SIGKILL)
        locks = [os.path.join(self.state, "sessions", c, ".worker-lock") for c in ids]
        holder = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, os, sys\n"
             "fds = [os.open(p, os.O_RDWR | os.O_CREAT) for p in sys.argv[1:]]\n"
             "[fcntl.lockf(fd, fcntl.LOCK_EX) for fd in fds]\n"
             "print('held', flush=True)\nsys.stdin.read()"] + locks,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(holder.stdout.readline().strip(), "held")
            t0 = time.monotonic()
            self.start()
            status = self.client.call("shim.status")  # answered once the load is done
            waited = time.monotonic() - t0
            self.assertEqual(status["sessions"]["running"], 2)
            # one minute for the load, however many sessions wait; two would be two minutes
            self.assertLess(waited, 110, "the start waited once for all the stuck workers")
            self.assertEqual(self.shim_log().count("still at work on it"), 2)
        finally:
            holder.stdin.close()
            holder.wait()
            holder.stdout.close()
        for cid, name in zip(ids, ("stuck-a", "stuck-b")):
            r = self.client.call("containers.exec", container_id=cid, code="v")
            self.assertEqual(r["result"], repr(name))

    def test_warm_sandboxes_of_a_dead_shim_are_removed(self):
        self.stop(signal.SIGTERM)
        self.start(["--warm", "2"])
        wait_for(lambda: self.client.call("shim.status")["sessions"]["warm"] == 2,
                 "two warm sandboxes")
        runtime = os.path.join(self.state, "runtime")
        warm = [w for w in os.listdir(runtime) if w.startswith("cntr_")]
        self.assertEqual(len(warm), 2)
        pids = [init_pid(self.state, w) for w in warm]
        self.stop(signal.SIGKILL)
        self.start(["--warm", "0"])
        for pid in pids:
            wait_for(lambda: gone(pid), "the dead shim's warm sandbox to be removed")
        wait_for(lambda: not [w for w in warm if w in os.listdir(runtime)],
                 "their runtime records to go")
        for w in warm:
            wait_for(lambda: not os.path.exists(os.path.join(self.state, "sessions", w)),
                     "their session directories to go")
