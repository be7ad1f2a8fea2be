"""files.*: uploads, downloads, listing, and paths or links a hostile sandbox plants."""

import base64
import json
import os
import socket
import tempfile

from shimtest import ShimTestCase


class TestFiles(ShimTestCase):
    def setUp(self):
        self.cid = self.create()["id"]

    def test_upload_and_use(self):
        f = self.upload(self.cid, "data/sales.csv", b"a,b\n1,2\n3,4\n")
        self.assertRegex(f["id"], r"^cfile_[0-9a-f]{32}$")
        self.assertEqual(f["object"], "container.file")
        self.assertEqual(f["path"], "/mnt/data/data/sales.csv")
        self.assertEqual(f["bytes"], 12)
        self.assertEqual(f["source"], "user")
        r = self.exec(self.cid, "import pandas as pd\nint(pd.read_csv('data/sales.csv')['b'].sum())")
        self.assertEqual(r["result"], "6")
        g = self.upload(self.cid, "/mnt/data/abs.txt", b"x")
        self.assertEqual(g["path"], "/mnt/data/abs.txt")
        self.assertEqual(self.client.call("files.retrieve", container_id=self.cid,
                                          file_id=f["id"])["id"], f["id"])
        self.assertEqual(self.download(self.cid, f["id"]), b"a,b\n1,2\n3,4\n")
        # overwrite keeps the id
        h = self.upload(self.cid, "abs.txt", b"yy")
        self.assertEqual((h["id"], h["bytes"]), (g["id"], 2))

    def test_list_and_delete(self):
        ids = [self.upload(self.cid, f"f{i}.txt", b"%d" % i)["id"] for i in range(3)]
        self.exec(self.cid, "open('made.txt', 'w').write('by code')")
        page = self.client.call("files.list", container_id=self.cid, order="asc")
        self.assertEqual([f["id"] for f in page["data"]][:3], ids)
        made = [f for f in page["data"] if f["path"] == "/mnt/data/made.txt"]
        self.assertEqual(made[0]["source"], "assistant")
        first = self.client.call("files.list", container_id=self.cid, order="asc", limit=2)
        self.assertTrue(first["has_more"])
        rest = self.client.call("files.list", container_id=self.cid, order="asc",
                                after=first["last_id"])
        self.assertEqual(len(first["data"]) + len(rest["data"]), 4)
        r = self.client.call("files.delete", container_id=self.cid, file_id=ids[0])
        self.assertEqual(r, {"id": ids[0], "object": "container.file.deleted", "deleted": True})
        self.assertEqual(self.exec(self.cid, "import os; os.path.exists('f0.txt')")["result"], "False")
        self.assertRpcError(lambda: self.client.call("files.retrieve", container_id=self.cid,
                                                     file_id=ids[0]), code="not_found", http=404)
        # a file the code deletes leaves the list
        self.exec(self.cid, "import os; os.remove('f1.txt')")
        listed = [f["id"] for f in self.client.call("files.list", container_id=self.cid)["data"]]
        self.assertNotIn(ids[1], listed)

    def test_hostile_paths(self):
        for path in ["../escape.txt", "/etc/passwd", "a/../../b", "./x", "a//b", "",
                     "/mnt/data/../etc/x", "a\nb", "x" * 300, "/".join(["d"] * 600)]:
            self.assertRpcError(lambda: self.upload(self.cid, path, b"x"), code="invalid_path",
                                param="path", http=400)
        m = self.client.request("files.create", {"container_id": self.cid, "path": "a\u0000b",
                                                 "content": "eA=="})
        self.assertIn("error", m)

    def test_upload_limits(self):
        self.assertRpcError(lambda: self.upload(self.cid, "big.bin", b"\0" * (5 << 20)),
                            code="file_too_large", http=413)
        self.assertRpcError(lambda: self.client.call("files.create", container_id=self.cid,
                                                     path="x", content="not base64!"),
                            code="invalid_value", param="content")
        # the workspace (16m here) fills with a clear error, and what was stored stays
        self.upload(self.cid, "keep.txt", b"keep")
        for i in range(4):
            try:
                self.upload(self.cid, f"fill{i}.bin", b"\1" * (4 << 20) - 1 if False else b"\1" * ((4 << 20) - 64))
            except Exception as e:
                self.assertIn("workspace is full", str(e))
                break
        else:
            self.fail("the 16m workspace did not fill up")
        self.assertEqual(self.exec(self.cid, "open('keep.txt').read()")["result"], "'keep'")

    def test_symlink_planted_by_code(self):
        r = self.exec(self.cid, "import os\nos.symlink('/etc/shadow', '/mnt/data/x')\n"
                      "os.symlink('/etc', '/mnt/data/etcdir')\nopen('real.txt', 'w').write('r')")
        listed = {f["path"]: f["id"] for f in self.client.call("files.list", container_id=self.cid,
                                                                 limit=100)["data"]}
        self.assertNotIn("/mnt/data/x", listed, "a symlink is no file to list")
        self.assertIn("/mnt/data/real.txt", listed)
        # an upload through the planted directory link is refused, nothing lands in /etc
        self.assertRpcError(lambda: self.upload(self.cid, "etcdir/capsule-pwned", b"x"))
        import os
        self.assertFalse(os.path.exists("/etc/capsule-pwned"))
        # the code swaps a listed file for a link to the host's secrets: the shim refuses it
        fid = listed["/mnt/data/real.txt"]
        self.exec(self.cid, "import os\nos.remove('real.txt')\nos.symlink('/etc/shadow', 'real.txt')")
        e = self.assertRpcError(lambda: self.download(self.cid, fid))
        self.assertNotIn("root:", e.data["message"])

    def test_hardlink_planted_by_code(self):
        f = self.upload(self.cid, "secret-looking.txt", b"mine")
        self.exec(self.cid, "import os\nos.link('secret-looking.txt', 'alias.txt')")
        self.assertRpcError(lambda: self.download(self.cid, f["id"]), message="hard links")

    def test_copy_between_containers(self):
        f = self.upload(self.cid, "shared.txt", b"carried over")
        other = self.create(name="copy", file_ids=[f["id"]])
        r = self.exec(other["id"], "open('shared.txt').read()")
        self.assertEqual(r["result"], "'carried over'")


class TestFilesByDescriptor(ShimTestCase):
    """content_fd: the bytes travel as a descriptor beside the call (SCM_RIGHTS), as the gateway
    sends them, instead of base64 inside the JSON."""

    def setUp(self):
        self.cid = self.create()["id"]

    def call_with_fd(self, sock, fd, method, **params):
        msg = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        socket.send_fds(sock, [(msg + "\n").encode()], [fd] if fd is not None else [])
        data, fds = b"", []
        while not data.endswith(b"\n"):
            chunk, got, _, _ = socket.recv_fds(sock, 1 << 20, 4)
            if not chunk:
                raise ConnectionError("the shim closed the connection")
            data += chunk
            fds += got
        return json.loads(data), fds

    def test_upload_and_download_by_fd(self):
        payload = bytes(range(256)) * 4000
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.socket)
            fd = os.memfd_create("upload")
            os.write(fd, payload)
            m, _ = self.call_with_fd(s, fd, "files.create", container_id=self.cid,
                                     path="by-fd.bin", content_fd=True)
            os.close(fd)
            self.assertEqual(m["result"]["bytes"], len(payload), m)
            m, fds = self.call_with_fd(s, None, "files.content", container_id=self.cid,
                                       file_id=m["result"]["id"], content_fd=True)
            self.assertEqual(m["result"]["bytes"], len(payload))
            self.assertNotIn("content", m["result"])
            self.assertEqual(len(fds), 1)
            with os.fdopen(fds[0], "rb") as f:
                self.assertEqual(f.read(), payload)
        self.assertEqual(self.download(self.cid, m["result"]["id"]), payload)

    def test_a_failed_call_does_not_leave_its_descriptor_for_the_next(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.socket)
            theirs = os.memfd_create("theirs")
            os.write(theirs, b"another tenant's bytes")
            m, _ = self.call_with_fd(s, theirs, "files.create", container_id=self.cid,
                                     path="x.txt", content_fd=True, tenant="someone-else")
            self.assertEqual(m["error"]["data"]["http_status"], 404)
            m, _ = self.call_with_fd(s, None, "files.create", container_id=self.cid,
                                     path="mine.txt", content_fd=True)
            self.assertEqual(m["error"]["data"]["param"], "content_fd", m)
            os.close(theirs)

    def test_fd_limits(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.socket)
            big = os.memfd_create("big")
            os.ftruncate(big, (4 << 20) + 1)  # the test shim's --max-upload is 4m
            m, _ = self.call_with_fd(s, big, "files.create", container_id=self.cid,
                                     path="big.bin", content_fd=True)
            os.close(big)
            self.assertEqual(m["error"]["data"]["http_status"], 413)
            r, w = os.pipe()
            m, _ = self.call_with_fd(s, r, "files.create", container_id=self.cid,
                                     path="pipe.bin", content_fd=True)
            os.close(r)
            os.close(w)
            self.assertEqual(m["error"]["data"]["code"], "invalid_value")
            # a "regular" file whose read may wait forever (procfs, tracefs, FUSE, NFS) would
            # stall every other client: only memfds and local disks are read
            proc = os.open("/proc/self/status", os.O_RDONLY)
            m, _ = self.call_with_fd(s, proc, "files.create", container_id=self.cid,
                                     path="proc.bin", content_fd=True)
            os.close(proc)
            self.assertEqual(m["error"]["data"]["code"], "invalid_value", m)
            self.assertIn("local disk", m["error"]["data"]["message"])
            with tempfile.NamedTemporaryFile(dir="/var/tmp") as disk:
                disk.write(b"on a local disk")
                disk.flush()
                m, _ = self.call_with_fd(s, disk.fileno(), "files.create", container_id=self.cid,
                                         path="disk.bin", content_fd=True)
            self.assertEqual(m["result"]["bytes"], 15, m)
