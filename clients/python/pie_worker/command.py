"""A local process per job, exactly as PIE's `command` handler and `pie worker` run one
(src/dispatch/handlers/command.handler.ts): the envelope as JSON on stdin, the output as JSON on
stdout; exit 0 is success, anything else a failure carrying the exit code and the tail of
stderr. A cancelled job's process group gets SIGTERM, then SIGKILL after a grace."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import threading
import time
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence

from .errors import JobFailed
from .job import Job, as_object

#: stdout beyond this fails the job with ``output_too_large``.
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
#: How much of the end of stderr a failure carries.
STDERR_TAIL_BYTES = 2048
#: How long a process has between SIGTERM and SIGKILL.
KILL_GRACE_S = 2.0
#: How long to wait, after the process exits, for output still in its pipes.
PIPE_DRAIN_S = 0.2
#: A job's process needs nothing of PIE's own credentials.
SECRET_VARIABLES = ("PIE_JWT_SECRET", "DATABASE_URL", "PIE_TOKEN")

_POSIX = os.name == "posix"


def run_command(
    job: Job,
    command: str,
    args: Sequence[str] = (),
    *,
    cwd: Optional[str] = None,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
) -> Dict[str, Any]:
    """Runs `command args...` for `job` and answers its output, or raises ``JobFailed``.

    When `job` is cancelled while the process runs, the process group is stopped and
    ``JobFailed("aborted" | "timeout", ...)`` raised (the worker reports only the timeout).
    """
    if job.is_cancelled():
        raise _aborted(job, None, "")
    env = {name: value for name, value in os.environ.items() if name not in SECRET_VARIABLES}
    env["PIE_JOB_ID"] = job.job_id
    env["PIE_JOB_ATTEMPT"] = str(job.attempt)
    try:
        process = subprocess.Popen(
            [command, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            # Its own process group: a kill reaches whatever the command started (`sh -c ...`),
            # and a Ctrl-C at the worker's terminal does not kill jobs it means to let finish.
            start_new_session=_POSIX,
        )
    except OSError as error:
        details: Dict[str, Any] = {}
        if error.errno is not None and error.errno in errno.errorcode:
            details["errno"] = errno.errorcode[error.errno]
        raise JobFailed(
            "spawn",
            'could not start "%s": %s' % (command, error.strerror or error),
            **details,
        )
    return _Run(job, process, max_output_bytes).wait()


class _Run:
    """One running process: feeds stdin, collects stdout (capped) and the tail of stderr, and
    stops the process when the job is cancelled or its output grows too large."""

    def __init__(self, job: Job, process: "subprocess.Popen[bytes]", max_output_bytes: int) -> None:
        self.job = job
        self.process = process
        self.max_output_bytes = max_output_bytes
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.stdout: List[bytes] = []
        self.stdout_bytes = 0
        self.too_large = False
        self.stderr_tail = b""
        self.killed_for: Optional[str] = None

    def wait(self) -> Dict[str, Any]:
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        assert process.stderr is not None
        readers = [
            _thread(self._feed, process.stdin, json.dumps(self.job.envelope).encode("utf-8")),
            _thread(self._read_stdout, process.stdout),
            _thread(self._read_stderr, process.stderr),
        ]
        _thread(self._reap)
        self.job.add_cancel_callback(self.wake.set)
        while True:
            self.wake.wait()
            self.wake.clear()
            if process.poll() is not None:
                break
            if self.killed_for is None:
                if self.job.is_cancelled():
                    self.killed_for = "abort"
                    self._kill()
                elif self.too_large:
                    self.killed_for = "output"
                    self._kill()
        # 'exit', then the pipes: a grandchild that inherited them may hold them open, so the
        # wait for them is capped.
        drain_until = time.monotonic() + PIPE_DRAIN_S
        for reader, pipe in zip(readers[1:], (process.stdout, process.stderr)):
            reader.join(max(0.0, drain_until - time.monotonic()))
            if not reader.is_alive():
                pipe.close()
        return self._outcome(process.returncode)

    def _outcome(self, code: int) -> Dict[str, Any]:
        with self.lock:
            tail = _decode_tail(self.stderr_tail)
            stdout = b"".join(self.stdout)
            too_large = self.too_large
        signal_name = _signal_name(-code) if code < 0 else None
        if self.killed_for == "abort":
            raise _aborted(self.job, signal_name, tail)
        if too_large:
            raise JobFailed(
                "output_too_large",
                "the command wrote more than %d bytes to stdout" % self.max_output_bytes,
                max_output_bytes=self.max_output_bytes,
            )
        if code == 0:
            return parse_output(stdout)
        raise JobFailed(
            "exit",
            "the command was killed by %s" % signal_name
            if signal_name is not None
            else "the command exited with code %d" % code,
            exit_code=None if signal_name is not None else code,
            signal=signal_name,
            stderr_tail=tail,
        )

    def _kill(self) -> None:
        self._signal_group(signal.SIGTERM)
        # The SIGKILL outlives the job on purpose: it also ends stragglers in the group that
        # ignored the SIGTERM after the command itself exited.
        timer = threading.Timer(KILL_GRACE_S, self._signal_group, (_SIGKILL,))
        timer.daemon = True
        timer.start()

    def _signal_group(self, signum: int) -> None:
        try:
            if _POSIX:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
        except OSError:
            pass  # ESRCH: the group is already gone

    def _feed(self, pipe: IO[bytes], data: bytes) -> None:
        # The process may exit without reading stdin (EPIPE); that is its business.
        try:
            pipe.write(data)
        except OSError:
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def _read_stdout(self, pipe: IO[bytes]) -> None:
        for chunk in _chunks(pipe):
            with self.lock:
                if self.too_large:
                    continue
                self.stdout_bytes += len(chunk)
                if self.stdout_bytes <= self.max_output_bytes:
                    self.stdout.append(chunk)
                    continue
                self.too_large = True
                self.stdout = []
            self.wake.set()

    def _read_stderr(self, pipe: IO[bytes]) -> None:
        for chunk in _chunks(pipe):
            with self.lock:
                self.stderr_tail = (self.stderr_tail + chunk)[-STDERR_TAIL_BYTES:]

    def _reap(self) -> None:
        self.process.wait()
        self.wake.set()


_SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)


def _chunks(pipe: IO[bytes]) -> Iterator[bytes]:
    """What a pipe gives, as it comes, until its end."""
    fd = pipe.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def _thread(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args)
    thread.daemon = True
    thread.start()
    return thread


def _aborted(job: Job, signal_name: Optional[str], tail: str) -> JobFailed:
    """The stop reason decides: a deadline is a final `timeout` failure; anything else (a cancel,
    a lost lease, a forced stop) is an `aborted` the worker does not report."""
    details: Dict[str, Any] = {"stderr_tail": tail}
    if signal_name is not None:
        details["signal"] = signal_name
    if job.stop_reason == "timeout":
        return JobFailed(
            "timeout", "the job passed its deadline; the command was stopped", **details
        )
    why = job.stop_message or ""
    return JobFailed(
        "aborted",
        "the command was stopped before it finished" + (": " + why if why else ""),
        **details,
    )


def parse_output(stdout: bytes) -> Dict[str, Any]:
    """A JSON object on stdout is the output; anything else is kept as text."""
    text = stdout.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    output = as_object(parsed)
    return output if output is not None else {"stdout": text}


def _decode_tail(tail: bytes) -> str:
    """The last bytes of stderr, without a character cut in half at the start."""
    return tail.decode("utf-8", errors="replace").lstrip("\ufffd")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "SIG%d" % signum

