"""``python ...`` commands of the tests started warm: forked from a process that has imported the libraries.

A new Python process spends 5-6 CPU-seconds importing TensorFlow, Keras, MLflow, Optuna, scikit-learn and
pandas before it does anything; the suite starts about a hundred of them, on two cores. :func:`run` and
:func:`popen` take the command a test would give ``subprocess`` (``[sys.executable, "-m", MODULE, ...]``,
``[sys.executable, SCRIPT, ...]``, ``[sys.executable, "-c", CODE, ...]``) and start it as a fork of a
*warm* process (one per test worker, started on first use) that imported those libraries and nothing of
ours or of the test's. The fork then becomes the command, as ``python`` would start it: its own working
directory, environment, ``sys.argv``, ``sys.path`` (the script's folder or the working directory first,
then the command's ``PYTHONPATH``, then the interpreter's own), standard streams, default signal handlers;
it runs the command as ``__main__`` and ends as Python ends (threads joined, exit hooks, streams flushed),
with the same exit code (a traceback and 1 for an exception, death by SIGINT for Ctrl-C).

What a warm process is not: the libraries above were loaded with the warm process's environment, so a
command that checks TensorFlow's start-up (its C++ lines on stderr, an environment variable read at load
time, what an import loads) needs a cold ``subprocess`` and uses one. Anything but ``python`` with one of
the three forms above (an interpreter option such as ``-X``) starts cold too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

#: what the warm process imports before it forks: the libraries every command of ours loads
WARM_IMPORTS = ("tensorflow", "keras", "mlflow", "optuna", "sklearn.ensemble", "pandas", "matplotlib.pyplot",
                "joblib", "yaml", "psutil", "scipy.stats")
#: the environment the warm process starts with: the test session's, read when this module is imported
#: (conftest has set TensorFlow's quiet log level and oneDNN off by then), not a test's monkeypatched one
_SESSION_ENV = dict(os.environ)

# The warm process: imports the libraries, then serves requests on a Unix socket, one connection per
# command: it forks, answers the child's pid, and when the child ends, its wait status. serve() returns only
# in a child, which then becomes the command (``start``) and ends as Python ends. Its file is this text after
# the imports and the two message functions below (_server_source).
_SERVER = r'''
def serve(path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    print("ready", flush=True)
    children = {}
    while True:
        readable, _, _ = select.select([listener, sys.stdin], [], [], 0.02)
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1):
            os._exit(0)  # the test worker went away
        if listener in readable:
            conn, _ = listener.accept()
            request = _receive(conn)
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                return request
            children[pid] = conn
            _send(conn, {"pid": pid})
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                try:
                    _send(conn, {"status": status})
                except OSError:
                    pass
                conn.close()

def start(request):
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the handlers a python starts with
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    for number in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    if "numpy" in sys.modules:  # a python starts with its own entropy: so does each fork's global generator
        sys.modules["numpy"].random.seed()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, target in ((0, request["stdin"]), (1, request["stdout"]), (2, request["stderr"])):
        if target == "stdout":
            os.dup2(1, fd)
            continue
        opened = os.open(target, os.O_RDONLY if fd == 0 else os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    unbuffered = bool(request["env"].get("PYTHONUNBUFFERED"))
    sys.stdin = sys.__stdin__ = open(0, "r", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", closefd=False, buffering=1 if unbuffered else -1)
    sys.stderr = sys.__stderr__ = open(2, "w", closefd=False, buffering=1, errors="backslashreplace")
    kind, target, args = request["kind"], request["target"], request["args"]
    first = {"module": os.getcwd(), "code": "", "script": os.path.dirname(os.path.abspath(target))}[kind]
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [first, *extra, *BASE_PATH]
    sys.argv = {"module": [target], "code": ["-c"], "script": [target]}[kind] + list(args)
    import runpy
    if kind == "module":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    elif kind == "script":
        runpy.run_path(target, run_name="__main__")
    else:  # as python -c runs CODE: in an empty __main__
        main = sys.modules["__main__"]
        for name in [n for n in vars(main) if n not in ("__builtins__", "__name__", "__doc__", "__spec__")]:
            delattr(main, name)
        exec(compile(target, "<string>", "exec"), vars(main))


# sys.path as a python started with no PYTHONPATH has it, less the script's folder: the interpreter's own
BASE_PATH = sys.path[1:]
import importlib
for _name in json.loads(sys.argv[1]):
    importlib.import_module(_name)
del _name
import gc
gc.collect()
gc.freeze()
start(serve(sys.argv[2]))
'''


class _Warm:
    """The warm process of this test worker: started on first use, ended with the worker."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="warm-python-"))
        self.socket = str(self.folder / "socket")

    def address(self) -> str:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                server = self.folder / "server.py"
                server.write_text(_server_source())
                env = {k: v for k, v in _SESSION_ENV.items() if k != "PYTHONPATH"}
                Path(self.socket).unlink(missing_ok=True)
                self.process = subprocess.Popen(
                    [sys.executable, str(server), json.dumps(WARM_IMPORTS), self.socket], cwd=self.folder, env=env,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                line = self.process.stdout.readline()
                assert line.strip() == "ready", "the warm Python process did not start"
        return self.socket


_WARM = _Warm()


def _send(conn: socket.socket, message: dict) -> None:
    data = json.dumps(message).encode()
    conn.sendall(struct.pack("!I", len(data)) + data)


def _receive(conn: socket.socket) -> dict | None:
    head = b""
    while len(head) < 4:
        chunk = conn.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    size, data = struct.unpack("!I", head)[0], b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def _server_source() -> str:
    """The warm process's script: its imports, :func:`_send` and :func:`_receive` as they are here, then _SERVER."""
    import inspect

    return "import json, os, select, signal, socket, struct, sys\n\n" + inspect.getsource(_send) + "\n" \
        + inspect.getsource(_receive) + _SERVER


def _parse(args: list[str]) -> tuple[str, str, list[str]] | None:
    """``(kind, target, rest)`` of ``python ...`` in one of the three forms started warm, else None."""
    args = [str(a) for a in args]
    if len(args) < 2 or args[0] != sys.executable:
        return None
    if args[1] in ("-m", "-c") and len(args) >= 3:
        return ("module" if args[1] == "-m" else "code"), args[2], args[3:]
    if args[1].startswith("-"):
        return None
    return "script", args[1], args[2:]


class WarmProcess:
    """A command started warm, as far as the tests use ``subprocess.Popen``: pid, poll, wait, signals."""

    def __init__(self, conn: socket.socket, pid: int, args: list[str]) -> None:
        self.conn, self.pid, self.args, self.returncode = conn, pid, args, None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.conn.setblocking(False)
            try:
                message = _receive(self.conn)
            except BlockingIOError:
                return None
            finally:
                self.conn.setblocking(True)
            self._ended(message)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.conn.settimeout(timeout)
            try:
                message = _receive(self.conn)
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            finally:
                self.conn.settimeout(None)
            self._ended(message)
        return self.returncode

    def _ended(self, message: dict | None) -> None:
        status = (message or {}).get("status")
        if status is None:
            raise RuntimeError("the warm Python process went away before the command ended")
        self.returncode = os.waitstatus_to_exitcode(status)
        self.conn.close()

    def send_signal(self, number: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def popen(args: list[Any], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
          stdout: Path | str = os.devnull, stderr: Path | str | None = None,
          stdin: Path | str = os.devnull) -> WarmProcess:
    """Start ``args`` (``[sys.executable, ...]`` in a form :func:`_parse` takes) warm; its output appended to
    the files ``stdout`` and ``stderr`` (``None``: into ``stdout``'s file)."""
    parsed = _parse(list(args))
    if parsed is None:
        raise ValueError(f"not a command to start warm: {args}")
    kind, target, rest = parsed
    for path in (stdout, stderr):
        if path is not None:
            Path(path).open("ab").close()  # there when this returns, as with a file subprocess opens
    request = {"kind": kind, "target": target, "args": rest, "cwd": str(cwd or os.getcwd()),
               "env": dict(os.environ if env is None else env), "stdin": str(stdin), "stdout": str(stdout),
               "stderr": "stdout" if stderr is None else str(stderr)}
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(_WARM.address())
    _send(conn, request)
    answer = _receive(conn)
    if not answer or "pid" not in answer:
        raise RuntimeError("the warm Python process did not start the command")
    return WarmProcess(conn, answer["pid"], [str(a) for a in args])


def run(args: list[Any], *, cwd: Path | str | None = None, env: dict[str, str] | None = None,
        timeout: float | None = None, input: str | None = None, check: bool = False,
        capture_output: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    """``subprocess.run(args, capture_output=True, text=True, ...)`` (the output is always captured, as text),
    started warm where :func:`_parse` takes ``args``, cold otherwise: the exit code, stdout and stderr."""
    if _parse(list(args)) is None:
        return subprocess.run(args, cwd=cwd, env=env, timeout=timeout, input=input, check=check,
                              capture_output=True, text=True)
    with tempfile.TemporaryDirectory(prefix="warm-run-") as folder:
        files = {name: Path(folder) / name for name in ("stdin", "stdout", "stderr")}
        files["stdin"].write_text(input or "")
        process = popen(args, cwd=cwd, env=env, stdin=files["stdin"], stdout=files["stdout"], stderr=files["stderr"])
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        done = subprocess.CompletedProcess([str(a) for a in args], process.returncode,
                                           files["stdout"].read_text(errors="replace"),
                                           files["stderr"].read_text(errors="replace"))
    if check:
        done.check_returncode()
    return done
