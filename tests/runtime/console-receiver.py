"""A stand-in for an engine's console socket: accept one connection, take the pty master sent
with SCM_RIGHTS, write INPUT (if given) to it, and print what the container wrote."""
import os
import socket
import sys

path, data = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept()
_, fds, _, _ = socket.recv_fds(conn, 16, 1)
master = fds[0]
if data:
    os.write(master, data.encode())
out = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:  # EIO: every slave is closed
        break
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
