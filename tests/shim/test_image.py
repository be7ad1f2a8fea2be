"""The shim on a built image (rootfs/build), not the host's /usr: CAPSULE_TEST_IMAGE=DIR."""

import os
import unittest

from shimtest import ShimTestCase

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

    def test_status_names_the_image(self):
        self.assertEqual(self.client.call("shim.status")["image"], os.path.realpath(IMAGE))
