#!/usr/bin/python3
"""capsule executor: the persistent Python interpreter that runs inside a sandbox.

Launched as the container's process:

    /usr/bin/python3 /.capsule/executor/executor.py --socket /.capsule/session/executor.sock
                     [--data-dir /mnt/data] [--max-frame BYTES] [--output-limit CHARS]

It keeps one interpreter namespace (the module ``__main__``) for the whole session and runs
"cells" of code sent by the capsule shim over a unix socket. Standard library only; matplotlib
is used if the user's code imports it.

Start-up
--------
* ``chdir(data_dir)`` (created if missing); ``sys.path[0]`` is ``""`` so the user's uploaded
  modules import; no bytecode is written.
* fd 0 becomes ``/dev/null``; fds 1 and 2 become pipes read by the executor, so the output of
  subprocesses (``os.system``, ``subprocess.run``) is captured with the cell's output.
* ``MPLBACKEND=Agg`` is set before any user code runs, and ``MPLCONFIGDIR`` / ``XDG_CACHE_HOME``
  default to directories under /tmp (HOME is the data dir; caches must not show up as the user's
  files). matplotlib's font list is copied from /usr/share/capsule/matplotlib when the image has
  one (rootfs/build makes it). Nothing heavy is imported eagerly.
* The socket is bound under its own name in the socket's directory and then listens: once
  ``connect()`` on it succeeds, the executor is ready. Nothing is printed.
* Executor diagnostics (never user output) go to the original stderr, prefixed
  ``capsule-executor:``.

Protocol (the contract the shim implements)
-------------------------------------------
Newline-delimited JSON over a ``SOCK_STREAM`` unix socket, UTF-8. Each line is exactly one JSON
object; JSON escapes newlines inside strings, so a line is a frame. A request frame may be at most
``--max-frame`` bytes (default 16 MiB) excluding the ``\\n``. Every request is an object with:

    "id":     any JSON scalar (string, number, boolean, null); echoed unchanged in every reply
              line about this request
    "method": string
    ...       the method's parameters, as further members of the same object

Every line the executor sends is an object with ``"id"`` and ``"event"``:

    "event": "reply"   the successful answer to a non-execute method
    "event": "stream"  output of a running cell (only with ``"stream": true``)
    "event": "result"  the end of a cell: exactly one per accepted execute request
    "event": "error"   the request was refused: ``"error": {"code": str, "message": str}``

Protocol error codes: ``parse_error`` (not JSON / not UTF-8; id is null), ``frame_too_large``
(id is null; the rest of the oversized line is skipped), ``invalid_request`` (not an object, id
not a scalar, method missing or not a string), ``method_not_found``, ``invalid_params``, ``busy``
(a cell is running or queued), ``internal_error``. The connection stays open after any of them.

Methods
~~~~~~~
``execute`` ``{"code": str, "stream"?: bool}``
    Runs ``code`` in the session namespace. While it runs, with ``stream`` true, output arrives as
    ``{"id", "event": "stream", "name": "stdout"|"stderr", "text": str}`` lines, flushed every
    50 ms or 4 KiB. Then one line::

        {"id", "event": "result",
         "status": "ok" | "error" | "interrupted",
         "execution_count": int,          # the cell's number; cells are compiled as "<cell N>"
         "stdout": str, "stderr": str,    # whole output, each capped at --output-limit characters
                                          # (default 1 MiB) then "[output truncated: ...]"
         "result": str | null,            # repr() of the last statement if it is an expression
                                          # whose value is not None (as IPython; a trailing ";"
                                          # suppresses it); the value is also bound to "_"
         "error": null | {"ename": str, "evalue": str, "traceback": [str, ...]},
                                          # traceback lines show only the user's code
         "images": [{"path": str, "bytes": int}],   # open matplotlib figures, saved as PNG into
                                          # the data dir as figure-<N>-<k>.png, then closed
         "files": [{"path": str, "bytes": int, "mtime": float}],
                                          # regular files under the data dir created or changed by
                                          # the cell (symlinks not followed; figures excluded)
         "files_truncated": bool,         # the data dir holds more than 10000 entries
         "duration_ms": float}

    ``status`` is "interrupted" after SIGINT (KeyboardInterrupt; ``error`` describes it) and
    "error" for any other exception, including SyntaxError and SystemExit (``sys.exit()`` does not
    end the executor). The namespace survives both. Only one cell runs at a time; an execute while
    busy gets the error ``busy``.
``ping`` -> ``{"pid": int, "python": str, "execution_count": int, "busy": bool}``
    Answered at once, also while a cell runs; ``busy`` turns false only after the result of
    the cell that ended was sent to the client connected then.
``interrupt`` -> ``{"interrupted": bool}``
    Sends SIGINT to the executor if a cell is running (same as the shim sending SIGINT itself).
``reset`` -> ``{"reset": true}``
    Replaces the namespace with an empty one and closes all figures. Refused with ``busy``
    while a cell runs. ``execution_count`` keeps counting.
``last_result`` -> ``{"last_result": null | {...the last result line..., "delivered": bool}}``
    The result of the most recent finished cell, and whether it reached a client.
``prime`` ``{"modules": [str], "plot"?: bool}`` -> ``{"primed": [str], "failed": [str], "ms": float}``
    Done once, before the session is anyone's: imports the modules (at most 32 dotted names) and,
    with ``plot``, draws and renders a throw-away matplotlib figure (fonts, the Agg renderer),
    then closes every figure and collects garbage. Nothing of it is in the user's namespace, in
    the data dir or in ``execution_count``; its output is discarded. Refused with ``busy``
    like a cell; SIGINT stops it. The first ``execute`` that comes while it runs is not refused:
    it stops the prime (between imports, or by KeyboardInterrupt inside one) and runs next, so
    a session's first cell never waits for the rest of the prime.

Connections: one client at a time. A new connection drops the previous one. A cell whose
client went away keeps running; its stream output and its result go to whichever client is
connected when they are sent (the shim reconnecting after its connection was cut gets them; the
ids say which request they answer), or nowhere while none is, and the result is kept for
``last_result`` either way.

Signals: SIGINT while a cell runs raises KeyboardInterrupt in it; SIGINT while idle is ignored.

Limits and known gaps: output written by background threads or processes between cells is
discarded; C-level stdio buffers of extension modules are not flushed at the end of a cell;
``os._exit()`` and fatal signals end the executor (the shim restarts it).
"""

from __future__ import annotations

import ast
import builtins
import codecs
import gc
import io
import json
import linecache
import os
import queue
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import types

# typing is not imported: with postponed annotations (PEP 563) the names below are only read by
# type checkers, and the import would cost every session's start-up ~9 ms.
if False:  # pragma: no cover
    from typing import Any, Callable, Optional  # noqa: F401

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
DEFAULT_OUTPUT_LIMIT = 1024 * 1024
MAX_DATA_DIR_ENTRIES = 10000
STREAM_FLUSH_SECONDS = 0.05
STREAM_FLUSH_BYTES = 4096
SEND_TIMEOUT_SECONDS = 30
PIPE_READS_PER_DRAIN = 16
CO_COROUTINE = 0x0080
NO_STDIN_MESSAGE = "input() is not available: this sandbox has no interactive stdin"

MATPLOTLIB_DIR = "/tmp/capsule-matplotlib"
PRIME_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}")
# Built into the image by rootfs/build: saves matplotlib's font scan (seconds) in every session.
MATPLOTLIB_SEED = "/usr/share/capsule/matplotlib"

THIS_FILE = (lambda: None).__code__.co_filename
_log_fd = 2


def log(message: str) -> None:
    try:
        os.write(_log_fd, f"capsule-executor: {message}\n".encode("utf-8", "replace"))
    except OSError:
        pass


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ----------------------------------------------------------------------------- output capture

class Capture:
    """The output of one cell: capped stdout/stderr text, plus chunks not yet streamed."""

    def __init__(self, limit: int, stream: bool, emit: Callable[[dict], None], req_id: Any) -> None:
        self.limit = limit
        self.stream = stream
        self.emit = emit
        self.req_id = req_id
        self.parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.size = {"stdout": 0, "stderr": 0}
        self.dropped = {"stdout": 0, "stderr": 0}
        self.pending: list[list[str]] = []
        self.pending_size = 0
        # Held while stream lines are sent, so that none is sent after the result line.
        self.send_lock = threading.Lock()

    def append(self, name: str, text: str) -> None:
        room = max(self.limit - self.size[name], 0)
        kept = text[:room]
        if kept:
            self.parts[name].append(kept)
            self.size[name] += len(kept)
            self._queue(name, kept)
        if len(text) > room:
            if self.dropped[name] == 0:
                self._queue(name, "\n[output truncated]\n")
            self.dropped[name] += len(text) - room

    def _queue(self, name: str, text: str) -> None:
        if not self.stream:
            return
        if self.pending and self.pending[-1][0] == name:
            self.pending[-1][1] += text
        else:
            self.pending.append([name, text])
        self.pending_size += len(text)

    def take_pending(self) -> list[list[str]]:
        chunks, self.pending, self.pending_size = self.pending, [], 0
        return chunks

    def text(self, name: str) -> str:
        out = "".join(self.parts[name])
        if self.dropped[name]:
            out += (f"\n[output truncated: {self.dropped[name]} more characters not shown, "
                    f"limit {self.limit}]\n")
        return out


class OutputHub:
    """Routes everything written to sys.stdout/sys.stderr and to fds 1/2 into the current cell."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.capture: Optional[Capture] = None
        self.fds: dict[str, int] = {}
        self.decoders: dict[str, Any] = {}
        self.ready: dict[str, Any] = {}  # one poll object per pipe, used under self.lock

    def redirect_fds(self) -> None:
        for name, target in (("stdout", 1), ("stderr", 2)):
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.dup2(w, target)
            os.close(w)
            self.fds[name] = r
            self.ready[name] = select.poll()
            self.ready[name].register(r, select.POLLIN)
            self.decoders[name] = codecs.getincrementaldecoder("utf-8")("replace")
        threading.Thread(target=self._pump, name="capsule-fd-pump", daemon=True).start()
        threading.Thread(target=self._flusher, name="capsule-stream", daemon=True).start()

    def _pump(self) -> None:
        poller = select.poll()
        for fd in self.fds.values():
            poller.register(fd, select.POLLIN)
        while True:
            poller.poll()
            with self.lock:
                for name in self.fds:
                    self._drain_locked(name)

    def _drain_locked(self, name: str) -> None:
        fd = self.fds.get(name)
        if fd is None:
            return
        for _ in range(PIPE_READS_PER_DRAIN):
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            text = self.decoders[name].decode(data)
            if text:
                self._append_locked(name, text)

    def _append_locked(self, name: str, text: str) -> None:
        cap = self.capture
        if cap is None:
            return
        cap.append(name, text)
        if cap.pending_size >= STREAM_FLUSH_BYTES:
            self.wake.notify_all()

    def write(self, name: str, text: str) -> None:
        with self.lock:
            # Whatever a subprocess wrote to the fd before this write comes first. A zero-timeout
            # poll is much cheaper than a read that fails with EAGAIN.
            ready = self.ready.get(name)
            if ready is not None and ready.poll(0):
                self._drain_locked(name)
            self._append_locked(name, text)

    def start(self, cap: Capture) -> None:
        with self.lock:
            for name in self.fds:
                self._drain_locked(name)  # leftovers from between cells are not this cell's
            self.capture = cap
            self.wake.notify_all()

    def finish(self, cap: Capture) -> None:
        """Collect everything written so far, then send the last stream lines."""
        for stream in (sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        with cap.send_lock:
            with self.lock:
                for name in self.fds:
                    self._drain_locked(name)
                self.capture = None
                chunks = cap.take_pending()
            self._emit(cap, chunks)

    def _flusher(self) -> None:
        while True:
            with self.lock:
                while self.capture is None or not self.capture.stream:
                    self.wake.wait()
                if self.capture.pending_size < STREAM_FLUSH_BYTES:
                    self.wake.wait(STREAM_FLUSH_SECONDS)
                cap = self.capture
            if cap is None or not cap.stream:
                continue
            with cap.send_lock:
                with self.lock:
                    chunks = cap.take_pending()
                self._emit(cap, chunks)

    @staticmethod
    def _emit(cap: Capture, chunks: list[list[str]]) -> None:
        for name, text in chunks:
            cap.emit({"id": cap.req_id, "event": "stream", "name": name, "text": text})


class CellStream(io.TextIOBase):
    """sys.stdout / sys.stderr during the session."""

    def __init__(self, hub: OutputHub, name: str, fd: int) -> None:
        super().__init__()
        self._hub = hub
        self._name = name
        self._fd = fd
        self.buffer = io.FileIO(fd, "w", closefd=False)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return "strict"

    @property
    def name(self) -> str:
        return f"<{self._name}>"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self._hub.write(self._name, s)
        return len(s)

    def flush(self) -> None:
        pass


class NoStdin(io.TextIOBase):
    """sys.stdin: reading fails at once instead of hanging."""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def name(self) -> str:
        return "<stdin>"

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 0

    def read(self, size: Optional[int] = -1) -> str:
        raise EOFError(NO_STDIN_MESSAGE)

    def readline(self, size: Optional[int] = -1) -> str:  # type: ignore[override]
        raise EOFError(NO_STDIN_MESSAGE)

    def readlines(self, hint: Optional[int] = -1) -> list[str]:
        raise EOFError(NO_STDIN_MESSAGE)


def no_input(prompt: object = "") -> str:
    raise EOFError(NO_STDIN_MESSAGE)


# ----------------------------------------------------------------------------- connections

class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.send_lock = threading.Lock()
        self.alive = True
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                            struct.pack("ll", SEND_TIMEOUT_SECONDS, 0))
        except OSError:
            pass

    def send(self, obj: dict) -> bool:
        line = encode_line(obj)
        with self.send_lock:
            if not self.alive:
                return False
            try:
                self.sock.sendall(line)
                return True
            except OSError:
                self._close_locked()
                return False

    def close(self) -> None:
        with self.send_lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if not self.alive:
            return
        self.alive = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def encode_line(obj: dict) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates in user output
        data = text.encode("utf-8", "replace")
    return data + b"\n"


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


# ----------------------------------------------------------------------------- the executor

class Executor:
    def __init__(self, socket_path: str, data_dir: str, max_frame: int, output_limit: int) -> None:
        self.socket_path = socket_path
        self.data_dir = data_dir
        self.max_frame = max_frame
        self.output_limit = output_limit
        self.hub = OutputHub()
        self.main_module = self._fresh_main()
        self.execution_count = 0
        self.state_lock = threading.Lock()
        self.busy = False
        self.running_cell = False
        # a prime gives way to the first execute: it stops (KeyboardInterrupt, or before its next
        # module) and the execute, queued behind it, keeps the executor busy
        self.priming = False
        self.prime_cancelled = False
        self.queued_after_prime = False
        self.conn: Optional[Connection] = None
        self.last_result: Optional[dict] = None
        # Held while a result is sent and marked delivered, so last_result never reports a
        # result in flight as undelivered.
        self.result_lock = threading.Lock()
        self.requests: queue.Queue = queue.Queue()
        self.loop: Any = None
        self.methods: dict[str, Callable[[Connection, Any, dict], None]] = {
            "execute": self.m_execute,
            "ping": self.m_ping,
            "interrupt": self.m_interrupt,
            "reset": self.m_reset,
            "last_result": self.m_last_result,
            "prime": self.m_prime,
        }

    @staticmethod
    def _fresh_main() -> types.ModuleType:
        module = types.ModuleType("__main__")
        module.__dict__["__builtins__"] = builtins
        # Pickle and friends look user-defined classes up through sys.modules["__main__"].
        sys.modules["__main__"] = module
        return module

    # -- start-up

    def setup_process(self) -> None:
        os.environ["MPLBACKEND"] = "Agg"
        # matplotlib's font cache and config go to /tmp, not into the user's files.
        if "MPLCONFIGDIR" not in os.environ:
            os.environ["MPLCONFIGDIR"] = MATPLOTLIB_DIR
            seed_matplotlib_cache(MATPLOTLIB_SEED, MATPLOTLIB_DIR)
        # HOME is the data dir in the sandbox: caches (fontconfig, ...) go to /tmp instead.
        os.environ.setdefault("XDG_CACHE_HOME", "/tmp/capsule-cache")
        sys.dont_write_bytecode = True
        sys.path[0] = ""
        os.makedirs(self.data_dir, exist_ok=True)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        global _log_fd
        _log_fd = os.dup(2)
        os.set_inheritable(_log_fd, False)
        self.hub.redirect_fds()
        self._install_streams()
        builtins.input = no_input
        signal.signal(signal.SIGINT, self._on_sigint)

    def _install_streams(self) -> None:
        sys.stdout = CellStream(self.hub, "stdout", 1)
        sys.stderr = CellStream(self.hub, "stderr", 2)
        sys.stdin = NoStdin()

    def listen(self) -> socket.socket:
        """Bind the socket under its own name and listen.

        Until listen() a connect() is refused, so the shim's retries see the executor as ready
        only once it is. The name is bound as it stays (no rename): a checkpoint (CRIU) must
        find the socket's file under the name the kernel recorded at bind()."""
        directory = os.path.dirname(self.socket_path) or "."
        final_name = os.path.basename(self.socket_path)
        # Relative names dodge the 108-byte sun_path limit for deep session directories.
        os.chdir(directory)
        try:
            os.unlink(final_name)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(final_name)
        listener.listen(8)
        os.chdir(self.data_dir)
        return listener

    def serve_forever(self) -> None:
        listener = self.listen()
        threading.Thread(target=self._accept_loop, args=(listener,), name="capsule-accept",
                         daemon=True).start()
        while True:
            try:
                item = self.requests.get()
                self._run_request(*item)
            except KeyboardInterrupt:
                continue
            except BaseException as exc:  # the executor outlives anything a cell does
                log(f"internal error in main loop: {exc!r}")
                with self.state_lock:
                    self.busy = False

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.running_cell:
            raise KeyboardInterrupt

    # -- socket side (threads)

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError as exc:
                log(f"accept failed: {exc}")
                time.sleep(0.1)
                continue
            conn = Connection(sock)
            with self.state_lock:
                old, self.conn = self.conn, conn
            if old is not None:
                old.close()
            threading.Thread(target=self._read_loop, args=(conn,), name="capsule-conn",
                             daemon=True).start()

    def _read_loop(self, conn: Connection) -> None:
        buf = bytearray()
        skipping = False
        while conn.alive:
            try:
                chunk = conn.sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                if nl < 0:
                    if not skipping:
                        buf += chunk[start:]
                        if len(buf) > self.max_frame:
                            skipping = True
                            buf.clear()
                            self._send_error(conn, None, "frame_too_large",
                                             f"request line longer than {self.max_frame} bytes")
                    break
                piece = chunk[start:nl]
                start = nl + 1
                if skipping:
                    skipping = False
                    continue
                buf += piece
                if len(buf) > self.max_frame:
                    self._send_error(conn, None, "frame_too_large",
                                     f"request line longer than {self.max_frame} bytes")
                elif buf.strip():
                    self._handle_line(conn, bytes(buf))
                buf.clear()
        conn.close()

    def _handle_line(self, conn: Connection, line: bytes) -> None:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError) as exc:
            self._send_error(conn, None, "parse_error", f"request is not valid JSON: {exc}")
            return
        req_id = request.get("id") if isinstance(request, dict) else None
        if not is_scalar(req_id):
            self._send_error(conn, None, "invalid_request", "\"id\" must be a JSON scalar")
            return
        if not isinstance(request, dict):
            self._send_error(conn, None, "invalid_request", "request must be a JSON object")
            return
        method = request.get("method")
        if not isinstance(method, str):
            self._send_error(conn, req_id, "invalid_request", "\"method\" must be a string")
            return
        handler = self.methods.get(method)
        if handler is None:
            self._send_error(conn, req_id, "method_not_found", f"unknown method {method!r}")
            return
        try:
            handler(conn, req_id, request)
        except ProtocolError as exc:
            self._send_error(conn, req_id, exc.code, exc.message)
        except Exception as exc:
            log(f"internal error handling {method}: {exc!r}")
            self._send_error(conn, req_id, "internal_error", f"{type(exc).__name__}: {exc}")

    def _send_error(self, conn: Connection, req_id: Any, code: str, message: str) -> None:
        conn.send({"id": req_id, "event": "error", "error": {"code": code, "message": message}})

    def _reply(self, conn: Connection, req_id: Any, **fields: Any) -> None:
        conn.send({"id": req_id, "event": "reply", **fields})

    def _claim(self, execute: bool = False) -> None:
        with self.state_lock:
            if self.busy and execute and self.priming and not self.queued_after_prime:
                # the session's first cell: it never waits for the prime to finish
                self.queued_after_prime = True
                self.prime_cancelled = True
                if self.running_cell:
                    os.kill(os.getpid(), signal.SIGINT)
                return
            if self.busy:
                raise ProtocolError("busy", "a cell is already running")
            self.busy = True

    def m_execute(self, conn: Connection, req_id: Any, request: dict) -> None:
        code = request.get("code")
        stream = request.get("stream", False)
        if not isinstance(code, str):
            raise ProtocolError("invalid_params", "\"code\" must be a string")
        if not isinstance(stream, bool):
            raise ProtocolError("invalid_params", "\"stream\" must be a boolean")
        self._claim(execute=True)
        self.requests.put(("execute", conn, req_id, code, stream))

    def m_reset(self, conn: Connection, req_id: Any, request: dict) -> None:
        self._claim()
        self.requests.put(("reset", conn, req_id, None, False))

    def m_prime(self, conn: Connection, req_id: Any, request: dict) -> None:
        modules = request.get("modules", [])
        plot = request.get("plot", False)
        if (not isinstance(modules, list) or len(modules) > 32
                or not all(isinstance(m, str) and PRIME_NAME.fullmatch(m) for m in modules)):
            raise ProtocolError("invalid_params",
                                "\"modules\" must be a list of at most 32 dotted module names")
        if not isinstance(plot, bool):
            raise ProtocolError("invalid_params", "\"plot\" must be a boolean")
        self._claim()
        with self.state_lock:
            self.priming = True
            self.prime_cancelled = False
        self.requests.put(("prime", conn, req_id, "\n".join(modules), plot))

    def m_ping(self, conn: Connection, req_id: Any, request: dict) -> None:
        # "busy": false only once the result of the cell that ended has gone out (to whoever
        # is connected): a client that saw it idle never gets that result after the reply
        with self.result_lock:
            busy = self.busy
        self._reply(conn, req_id, pid=os.getpid(), python=sys.version.split()[0],
                    execution_count=self.execution_count, busy=busy)

    def m_interrupt(self, conn: Connection, req_id: Any, request: dict) -> None:
        running = self.running_cell
        if running:
            os.kill(os.getpid(), signal.SIGINT)
        self._reply(conn, req_id, interrupted=running)

    def m_last_result(self, conn: Connection, req_id: Any, request: dict) -> None:
        with self.result_lock:
            last = self.last_result
        self._reply(conn, req_id, last_result=last)

    # -- main thread: cells

    def _send_current(self, conn: Connection, obj: dict) -> bool:
        """Send to the client connected now: the one that asked, or the one that took its place
        (the shim reconnecting after its connection was cut); the ids tell it what is whose."""
        current = self.conn
        return current is not None and current.send(obj)

    def _run_request(self, kind: str, conn: Connection, req_id: Any, code: Optional[str],
                     stream: bool) -> None:
        keep_no_new_privs()
        if kind == "prime":
            try:
                reply = self._prime(code.split("\n") if code else [], stream)
            finally:
                with self.state_lock:
                    self.priming = False
                    # an execute that came meanwhile is queued and holds the executor now
                    self.busy = self.queued_after_prime
                    self.queued_after_prime = False
            self._send_current(conn, {"id": req_id, "event": "reply", **reply})
            return
        if kind == "reset":
            self._reset()
            with self.state_lock:
                self.busy = False
            self._send_current(conn, {"id": req_id, "event": "reply", "reset": True})
            return
        assert code is not None
        try:
            result = self.run_cell(code, stream, req_id, lambda obj: self._send_current(conn, obj))
        except BaseException as exc:  # a bug here must still answer the request
            log(f"internal error running cell: {exc!r}")
            result = {"id": req_id, "event": "result", "status": "error",
                      "execution_count": self.execution_count, "stdout": "", "stderr": "",
                      "result": None, "error": format_error(exc), "images": [], "files": [],
                      "files_truncated": False, "duration_ms": 0.0}
        result["delivered"] = False
        line = {k: v for k, v in result.items() if k != "delivered"}
        with self.result_lock:
            self.last_result = result
            with self.state_lock:
                self.busy = False
            if self._send_current(conn, fit_frame(line, self.max_frame)):
                result["delivered"] = True

    def _prime(self, modules: list[str], plot: bool) -> dict:
        """Import what every session imports, in no namespace the user sees; see ``prime``."""
        import importlib
        started = time.monotonic()
        primed, failed = [], []
        cap = Capture(0, False, lambda obj: None, None)  # output of imports goes nowhere
        self._install_streams()
        self.hub.start(cap)
        self.running_cell = True
        try:
            for name in modules:
                if self.prime_cancelled:
                    raise KeyboardInterrupt
                try:
                    importlib.import_module(name)
                    primed.append(name)
                except KeyboardInterrupt:
                    raise
                except BaseException:  # not in this image, or broken: the user will see it
                    failed.append(name)
            if plot and "matplotlib.pyplot" in sys.modules and not self.prime_cancelled:
                plt = sys.modules["matplotlib.pyplot"]
                try:
                    figure, axes = plt.subplots()
                    axes.plot([0, 1, 2], [0, 1, 4], label="x")
                    axes.set_title("prime")
                    axes.legend()
                    figure.savefig(io.BytesIO(), format="png")
                except Exception as exc:
                    log(f"prime: the throw-away plot failed: {exc!r}")
                finally:
                    plt.close("all")
        except KeyboardInterrupt:
            failed.append("(interrupted)")
        finally:
            self.running_cell = False
            self.hub.finish(cap)
        primed = [name for name in primed if name in sys.modules]
        # what the imports left for the collector, and the "last exception" they may have set
        for name in ("last_type", "last_value", "last_traceback", "last_exc"):
            if hasattr(sys, name):
                delattr(sys, name)
        gc.collect()
        return {"primed": primed, "failed": failed,
                "ms": round((time.monotonic() - started) * 1000, 3)}

    def _reset(self) -> None:
        self.main_module = self._fresh_main()
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            try:
                plt.close("all")
            except Exception:
                pass

    def run_cell(self, code: str, stream: bool, req_id: Any,
                 emit: Callable[[dict], None]) -> dict:
        self.execution_count += 1
        number = self.execution_count
        started = time.monotonic()
        before, _ = snapshot_files(self.data_dir)
        cap = Capture(self.output_limit, stream, emit, req_id)
        self._install_streams()
        signal.signal(signal.SIGINT, self._on_sigint)
        self.hub.start(cap)
        try:
            status, error, value_text = self._execute(code, f"<cell {number}>")
            after, truncated = snapshot_files(self.data_dir)
            images = self._save_figures(number)
        finally:
            self.hub.finish(cap)
        image_paths = {image["path"] for image in images}
        files = [dict(path_field(path), bytes=size, mtime=mtime_ns / 1e9)
                 for path, (size, mtime_ns) in sorted(after.items())
                 if before.get(path) != (size, mtime_ns) and path not in image_paths]
        return {
            "id": req_id, "event": "result", "status": status, "execution_count": number,
            "stdout": cap.text("stdout"), "stderr": cap.text("stderr"),
            "result": value_text, "error": error, "images": images, "files": files,
            "files_truncated": truncated,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
        }

    def _execute(self, code: str, filename: str) -> tuple[str, Optional[dict], Optional[str]]:
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        try:
            body_code, last_code = self._compile(code, filename)
        except KeyboardInterrupt as exc:
            return "interrupted", format_error(exc), None
        except Exception as exc:  # SyntaxError, ValueError (null bytes), RecursionError, ...
            return "error", format_error(exc, only=True), None
        namespace = self.main_module.__dict__
        try:
            self.running_cell = True
            try:
                self._run_code(body_code, namespace)
                value = self._run_code(last_code, namespace) if last_code is not None else None
                value_text = None
                if value is not None:
                    namespace["_"] = value
                    value_text = repr(value)
                    if len(value_text) > self.output_limit:
                        value_text = (value_text[:self.output_limit] +
                                      f"\n[result truncated: {len(value_text)} characters]")
            finally:
                self.running_cell = False
            return "ok", None, value_text
        except KeyboardInterrupt as exc:
            self.running_cell = False
            return "interrupted", format_error(exc), None
        except BaseException as exc:  # including SystemExit
            self.running_cell = False
            return "error", format_error(exc), None

    @staticmethod
    def _compile(code: str, filename: str) -> tuple[types.CodeType, Optional[types.CodeType]]:
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not ends_with_semicolon(code):
            last = tree.body.pop()
        body_code = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
        last_code = None
        if last is not None:
            expression = ast.Expression(last.value)
            last_code = compile(expression, filename, "eval", flags=flags, dont_inherit=True)
        return body_code, last_code

    def _run_code(self, code: types.CodeType, namespace: dict) -> Any:
        value = eval(code, namespace)
        if code.co_flags & CO_COROUTINE:  # top-level await
            if self.loop is None:
                import asyncio
                self.loop = asyncio.new_event_loop()
            value = self.loop.run_until_complete(value)
        return value

    def _save_figures(self, number: int) -> list[dict]:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return []
        images = []
        try:
            figures = [plt.figure(num) for num in plt.get_fignums()]
        except Exception as exc:
            sys.stderr.write(f"[capsule] could not list matplotlib figures: {exc}\n")
            return []
        for index, figure in enumerate(figures, 1):
            path = None
            try:
                path, handle = create_unique(self.data_dir, f"figure-{number}-{index}", ".png")
                with handle:
                    figure.savefig(handle, format="png", bbox_inches="tight")
                images.append({"path": path, "bytes": os.path.getsize(path)})
            except Exception as exc:
                sys.stderr.write(f"[capsule] could not save figure {index}: "
                                 f"{type(exc).__name__}: {exc}\n")
                if path is not None:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
        try:
            plt.close("all")
        except Exception:
            pass
        return images


# ----------------------------------------------------------------------------- helpers

def seed_matplotlib_cache(seed: str, target: str) -> None:
    """Copy the image's prebuilt matplotlib font list into the session's config dir."""
    try:
        names = [n for n in os.listdir(seed) if n.startswith("fontlist-") and n.endswith(".json")]
    except OSError:
        return
    try:
        os.makedirs(target, mode=0o700, exist_ok=True)
        for name in names:
            destination = os.path.join(target, name)
            if not os.path.exists(destination):
                with open(os.path.join(seed, name), "rb") as src, open(destination, "xb") as dst:
                    dst.write(src.read())
    except OSError as exc:
        log(f"could not seed the matplotlib cache: {exc}")


def ends_with_semicolon(code: str) -> bool:
    """True when the cell's last token is ';' (IPython: do not display the value)."""
    import tokenize
    last = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT,
                                  tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
                last = token
    except (tokenize.TokenError, SyntaxError):
        return False
    return last is not None and last.type == tokenize.OP and last.string == ";"


def user_traceback(tb: Any) -> Any:
    """The traceback without the executor's own frames (nor asyncio's before the cell)."""
    first_cell = tb
    while first_cell is not None and not first_cell.tb_frame.f_code.co_filename.startswith("<cell "):
        first_cell = first_cell.tb_next
    if first_cell is not None:
        tb = first_cell
    kept = []
    while tb is not None:
        if tb.tb_frame.f_code.co_filename != THIS_FILE:  # e.g. input() -> no_input()
            kept.append(tb)
        tb = tb.tb_next
    for current, following in zip(kept, kept[1:] + [None]):
        current.tb_next = following
    return kept[0] if kept else None


def format_error(exc: BaseException, only: bool = False) -> dict:
    if only:
        lines = traceback.format_exception_only(type(exc), exc)
    else:
        lines = traceback.format_exception(type(exc), exc, user_traceback(exc.__traceback__))
    try:
        evalue = str(exc)
    except Exception as inner:
        evalue = f"<str() failed: {type(inner).__name__}>"
    return {"ename": type(exc).__name__, "evalue": evalue,
            "traceback": "".join(lines).splitlines()}


def snapshot_files(root: str) -> tuple[dict[str, tuple[int, int]], bool]:
    """path -> (size, mtime_ns) for regular files under root; symlinks are not followed."""
    files: dict[str, tuple[int, int]] = {}
    pending = [root]
    seen = 0
    while pending:
        directory = pending.pop()
        try:
            entries = os.scandir(directory)
        except OSError:
            continue
        with entries:
            for entry in entries:
                seen += 1
                if seen > MAX_DATA_DIR_ENTRIES:
                    return files, True
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        files[entry.path] = (st.st_size, st.st_mtime_ns)
                except OSError:
                    continue
    return files, False


def path_field(path: str) -> dict:
    """A path for the shim: "path" when it is UTF-8; a name the file system holds in other
    bytes (os gives them as surrogates) goes as "path_hex", so the shim registers the real
    file instead of a mangled name."""
    try:
        path.encode("utf-8")
        return {"path": path}
    except UnicodeEncodeError:
        return {"path_hex": os.fsencode(path).hex()}


def create_unique(directory: str, stem: str, suffix: str) -> tuple[str, Any]:
    """Open a new file that did not exist before (never overwrites a user's file)."""
    for attempt in range(1000):
        name = f"{stem}{suffix}" if attempt == 0 else f"{stem}-{attempt}{suffix}"
        path = os.path.join(directory, name)
        try:
            return path, open(path, "xb")
        except FileExistsError:
            continue
    raise FileExistsError(f"no free file name for {stem}{suffix} in {directory}")


def fit_frame(line: dict, max_frame: int) -> dict:
    """Shrink the text members of a result line that would not fit in one frame."""
    if len(encode_line(line)) <= max_frame:
        return line
    budget = max(max_frame // 8, 1024)
    line = dict(line)
    for key in ("stdout", "stderr", "result"):
        value = line.get(key)
        if isinstance(value, str) and len(value) > budget:
            line[key] = value[:budget] + f"\n[truncated to fit the {max_frame}-byte frame limit]\n"
    return line


USAGE = ("usage: executor.py --socket PATH [--data-dir DIR] [--max-frame BYTES] "
         "[--output-limit CHARS]")


def parse_args(argv: list[str]) -> tuple[str, str, int, int]:
    """A few options, parsed by hand: argparse (and the gettext and locale it pulls in) would cost
    every session's start-up ~10 ms."""
    opts = {"--socket": None, "--data-dir": "/mnt/data", "--max-frame": str(DEFAULT_MAX_FRAME),
            "--output-limit": str(DEFAULT_OUTPUT_LIMIT)}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(USAGE)
            sys.exit(0)
        name, eq, value = arg.partition("=")
        if name not in opts:
            sys.exit(f"{USAGE}\nexecutor.py: unknown option {arg}")
        if not eq:
            if not args:
                sys.exit(f"{USAGE}\nexecutor.py: {name} needs a value")
            value = args.pop(0)
        opts[name] = value
    if opts["--socket"] is None:
        sys.exit(f"{USAGE}\nexecutor.py: --socket is required")
    try:
        max_frame, output_limit = int(opts["--max-frame"]), int(opts["--output-limit"])
    except ValueError:
        sys.exit(f"{USAGE}\nexecutor.py: --max-frame and --output-limit take integers")
    if max_frame < 1024:
        sys.exit("executor.py: --max-frame must be at least 1024")
    if output_limit < 1:
        sys.exit("executor.py: --output-limit must be positive")
    return (os.path.abspath(opts["--socket"]), os.path.abspath(opts["--data-dir"]), max_frame,
            output_limit)


_PR_SET_NO_NEW_PRIVS = 38
_libc = None


def keep_no_new_privs() -> None:
    """Set no_new_privs on the thread that runs cells (what it starts inherits it).

    The sandbox starts with it; a restore from a checkpoint (CRIU 3.17) does not bring it
    back, so it is set again before every cell. Setting it is always allowed and idempotent."""
    global _libc
    try:
        if _libc is None:
            import ctypes
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str]) -> int:
    socket_path, data_dir, max_frame, output_limit = parse_args(argv)
    executor = Executor(socket_path, data_dir, max_frame, output_limit)
    try:
        executor.setup_process()
        executor.serve_forever()
    except OSError as exc:
        log(f"cannot start: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
