"""The shim on a built image (rootfs/build), not the host's /usr: CAPSULE_TEST_IMAGE=DIR."""

import os
import unittest

from shimtest import ShimTestCase
from test_overlay import PIP, WHEEL, make_wheel

IMAGE = os.environ.get("CAPSULE_TEST_IMAGE")


@unittest.skipUnless(IMAGE, "CAPSULE_TEST_IMAGE is not set (scripts/test builds the CI image)")
class TestBuiltImage(ShimTestCase):
    extra_args = ["--image", IMAGE or "", "--warm", "0"]

    def test_session_on_the_image(self):
        cid = self.create()["id"]
        r = self.exec(cid, "import sys, os, numpy\nprint(sys.executable, os.getuid())\n"
                      "numpy.arange(4).sum()")
        self.assertEqual(r["status"], "completed", r)
        self.assertEqual(r["stdout"], "/usr/bin/python3 1000\n")
        self.assertEqual(r["result"], "6")
        self.upload(cid, "in.txt", b"from the host")
        self.assertEqual(self.exec(cid, "open('in.txt').read()")["result"], "'from the host'")
        # the image's own /etc, not the host's
        r = self.exec(cid, "open('/etc/os-release').read().split('\\n')[0]")
        self.assertIn("Debian", r["result"])
        r = self.exec(cid, "import pwd; pwd.getpwuid(1000).pw_name")
        self.assertEqual(r["result"], "'sandbox'")

    def test_pip_installs_into_the_sessions_root(self):
        status = self.client.call("shim.status")
        self.assertEqual(status["root"], "overlay", status.get("root_reason"))
        cid = self.create()["id"]
        self.upload(cid, WHEEL, make_wheel())
        r = self.exec(cid, PIP)
        self.assertTrue(r["stdout"].startswith("0\n"), r)
        r = self.exec(cid, "import capsule_wheel_probe\ncapsule_wheel_probe.ANSWER")
        self.assertEqual(r["result"], "42", r)
        other = self.create(name="other")["id"]
        r = self.exec(other, "import importlib.util\n"
                      "importlib.util.find_spec('capsule_wheel_probe') is None")
        self.assertEqual(r["result"], "True", r)

    def test_status_names_the_image(self):
        self.assertEqual(self.client.call("shim.status")["image"], os.path.realpath(IMAGE))
