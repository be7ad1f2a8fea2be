"""Primed warm sandboxes: the data stack imported before a create claims them, invisibly."""
import copy
import time

from shimtest import ShimTestCase, TEST_TIERS, wait_for

PRIMED_TIERS = copy.deepcopy(TEST_TIERS)
# pandas and matplotlib need more than the small test tier's 160m
PRIMED_TIERS["tiers"]["1g"].update(memory="640m", pids=128)
PRIMED_TIERS["prime"] = {"modules": ["numpy", "pandas", "matplotlib.pyplot", "no_such_module"],
                         "plot": True, "min_available": "1m"}

TYPICAL = """import pandas as pd, matplotlib.pyplot as plt
df = pd.DataFrame({"x": [1, 2, 3], "y": [2, 4, 9]})
df.plot(x="x", y="y")
df.describe().loc["mean", "y"]"""


class TestPrimed(ShimTestCase):
    extra_args = ["--warm", "1"]
    tiers = PRIMED_TIERS

    def status(self):
        return self.client.call("shim.status")

    def test_primed_session_looks_fresh(self):
        wait_for(lambda: self.status()["sessions"]["warm_primed"] >= 1,
                 "a warm sandbox to be primed", timeout=300, interval=0.1)
        c = self.create()
        first = self.exec(c["id"], "sorted(k for k in globals() if not k.startswith('__'))")
        self.assertEqual(first["status"], "completed", first)
        self.assertEqual(first["execution_count"], 1, "priming is not a cell")
        self.assertEqual(first["result"], "[]", "nothing of the priming in the user's namespace")
        self.assertEqual(first["stdout"] + first["stderr"], "")
        self.assertEqual(self.client.call("files.list", container_id=c["id"])["data"], [],
                         "no file of the priming in /mnt/data")
        seen = self.exec(c["id"], "import os, sys\n"
                         "nice = {int(open(f'/proc/self/task/{t}/stat').read().rsplit(')', 1)[1].split()[16])\n"
                         "        for t in os.listdir('/proc/self/task')}\n"
                         "('pandas' in sys.modules, 'matplotlib.pyplot' in sys.modules, sorted(nice),\n"
                         " os.listdir('.'))")
        self.assertEqual(seen["result"], "(True, True, [0], [])",
                         "primed, and every thread back at nice 0 once claimed")
        typical = self.exec(c["id"], TYPICAL)
        self.assertEqual(typical["status"], "completed", typical)
        self.assertEqual(typical["result"], "5.0")
        self.assertEqual(len([o for o in typical["outputs"] if o["type"] == "image"]), 1)
        self.assertEqual(typical["execution_count"], 3)
        # the pool refills, and primes again
        wait_for(lambda: self.status()["sessions"]["warm_primed"] >= 1,
                 "the refilled warm sandbox to be primed", timeout=300, interval=0.1)


class TestNotPrimedWhenMemoryIsShort(ShimTestCase):
    extra_args = ["--warm", "1"]
    tiers = copy.deepcopy(PRIMED_TIERS)
    tiers["prime"]["min_available"] = "1000000g"

    def test_no_priming_below_min_available(self):
        wait_for(lambda: self.client.call("shim.status")["sessions"]["warm"] >= 1,
                 "a warm sandbox", timeout=120)
        c = self.create()
        r = self.exec(c["id"], "import sys; 'pandas' in sys.modules")
        self.assertEqual(r["result"], "False", "a host short of memory primes nothing")
        self.assertEqual(r["execution_count"], 1)
