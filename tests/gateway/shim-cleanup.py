"""The shim side of tests/gateway/run.sh: wait for the shim's socket, delete what the tests left
(printing each id, so that a leftover is a failure), and sweep sandboxes after the shim stopped."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "shim"))
import shimtest  # noqa: E402

WORK = os.environ["WORK"]
SOCK = os.environ.get("CLEANUP_SOCKET", os.environ["SHIM_SOCKET"])


def accepting():
    try:
        shimtest.Client(SOCK, timeout=5).close()
        return True
    except OSError:
        return False


if sys.argv[1] == "wait":
    shimtest.wait_for(accepting, "the shim's socket to accept", timeout=30)
elif sys.argv[1] == "delete":  # TENANT...: every container of theirs, printing each
    c = shimtest.Client(SOCK)
    for tenant in sys.argv[2:]:
        while True:
            data = c.call("containers.list", limit=100, tenant=tenant)["data"]
            if not data:
                break
            for ct in data:
                print(ct["id"], end=" ")
                c.call("containers.delete", container_id=ct["id"], tenant=tenant)
elif sys.argv[1] == "sweep":
    left = []
    for state in ("state", "state-fast"):  # the suite's shim, and http.sh's with short minutes
        left += shimtest.sweep_state(os.path.join(WORK, state))
    shimtest.unmount_under(WORK)
    if left:
        print(" ".join(left))
