"""`python -m pie_worker`: PIE's reference pull worker (`pie worker`, src/cli/worker/) in
Python. Same options and defaults, same token rules, same envelope on stdin and output JSON on
stdout, same exit codes: 0 after a stop (or one round with --once), 1 when PIE refuses the worker
(or, with --once, when the claim fails), 2 for a bad command line."""

from __future__ import annotations

import logging
import os
import socket
import sys
import urllib.parse
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, TextIO

from .command import run_command
from .errors import PieError
from .job import Job
from .tokens import TokenUnavailable, worker_token
from .worker import Worker

USAGE = """\
Usage: python -m pie_worker --model M --version V [--url URL] [--worker-id ID]
         [--concurrency 1] [--lease 60] [--wait 20000] [--once] -- <command> [args...]

Claims jobs of one model version from PIE and runs <command> once per job: the job's envelope
as JSON on stdin, its output as JSON on stdout; exit 0 is success, anything else a failure with
the exit code and the tail of stderr. A cancelled job's command is stopped (SIGTERM, then
SIGKILL after 2 s). SIGTERM/SIGINT: no new claims, running jobs finish; again: stop them too.

  --url URL          PIE's base URL (default: PIE_URL, else http://PIE_HOST:PIE_PORT,
                     i.e. http://127.0.0.1:8080)
  --worker-id ID     names the worker in leases and logs (default: <hostname>-<pid>)
  --concurrency N    jobs at once, 1 to 100 (default 1)
  --lease S          lease in seconds, 5 to 3600, renewed every S/3 (default 60)
  --wait MS          long-poll wait of a claim in milliseconds, 0 to 30000 (default 20000)
  --once             claim once, run what came, exit

Token: PIE_TOKEN (scope jobs:complete for the model), else one signed with PIE's HS256 secret
(PIE_JWT_SECRET, or the jwt-secret file of PIE_DATA_DIR, default .pie).
"""


class UsageError(Exception):
    """A bad command line: the message names the option."""


class Options(NamedTuple):
    url: str
    model: str
    version: str
    worker_id: str
    concurrency: int
    lease_s: int
    wait_ms: int
    once: bool
    command: str
    args: List[str]


_STRING_OPTIONS = ("model", "version", "url", "worker-id", "concurrency", "lease", "wait")
_DEFAULTS = {"concurrency": "1", "lease": "60", "wait": "20000"}


def parse_args(argv: Sequence[str], env: Mapping[str, str]) -> Options:
    """Reads the command line as `pie worker` does (node's parseArgs, strict): `--name value`
    or `--name=value`, `--once`, positionals anywhere, everything after `--` positional."""
    values: Dict[str, str] = dict(_DEFAULTS)
    once = False
    positionals: List[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            positionals.extend(argv[index:])
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        name, equals, inline = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if name == "once":
            if equals:
                raise UsageError("Option '--once' does not take an argument")
            once = True
        elif name in _STRING_OPTIONS:
            if equals:
                values[name] = inline
            elif index < len(argv) and not argv[index].startswith("-"):
                values[name] = argv[index]
                index += 1
            elif index < len(argv):
                raise UsageError(
                    "Option '--%s' argument is ambiguous (%r); to give a value starting with a "
                    "dash use '--%s=%s'" % (name, argv[index], name, argv[index])
                )
            else:
                raise UsageError("Option '--%s <value>' argument missing" % name)
        else:
            raise UsageError(
                "Unknown option '%s'. To give a positional argument starting with '-', place it "
                "after '--', as in '-- \"%s\"'" % (arg.split("=")[0], arg)
            )

    model = values.get("model", "")
    if model == "":
        raise UsageError("--model is required")
    version = values.get("version", "")
    if version == "":
        raise UsageError("--version is required")
    if not positionals or positionals[0] == "":
        raise UsageError('give the command to run per job after "--", e.g. -- python3 model.py')
    url = values.get("url")
    if url is None:
        url = _non_empty(env.get("PIE_URL")) or _default_url(env)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError('--url must be an absolute URL, got "%s"' % url)
    return Options(
        url=url.rstrip("/"),
        model=model,
        version=version,
        worker_id=values.get("worker-id") or "%s-%d" % (socket.gethostname(), os.getpid()),
        concurrency=_integer("--concurrency", values["concurrency"], 1, 100),
        lease_s=_integer("--lease", values["lease"], 5, 3600),
        wait_ms=_integer("--wait", values["wait"], 0, 30000),
        once=once,
        command=positionals[0],
        args=list(positionals[1:]),
    )


def _non_empty(value: Optional[str]) -> Optional[str]:
    trimmed = (value or "").strip()
    return trimmed or None


def _default_url(env: Mapping[str, str]) -> str:
    """Where `pie serve` listens by the same settings; every address is reachable on loopback."""
    host = _non_empty(env.get("PIE_HOST")) or "127.0.0.1"
    port = _non_empty(env.get("PIE_PORT")) or "8080"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return "http://%s:%s" % ("[%s]" % host if ":" in host else host, port)


def _integer(name: str, raw: str, low: int, high: int) -> int:
    try:
        number = float(raw.strip())
    except ValueError:
        number = float("nan")
    if raw.strip() == "" or not number.is_integer() or not low <= number <= high:
        raise UsageError('%s must be an integer from %d to %d, got "%s"' % (name, low, high, raw))
    return int(number)


def _log_to(stream: TextIO) -> None:
    logger = logging.getLogger("pie_worker")
    if not logger.handlers:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("pie_worker: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)


def main(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    if any(arg in ("-h", "--help") for arg in argv[: argv.index("--") if "--" in argv else None]):
        sys.stdout.write(USAGE)
        return 0
    try:
        options = parse_args(argv, env)
        token = worker_token(options.model, options.worker_id, env)
    except (UsageError, TokenUnavailable) as error:
        sys.stderr.write("pie_worker: %s\n" % error)
        return 2
    _log_to(sys.stderr)
    worker = Worker(
        options.url,
        token,
        options.model,
        options.version,
        concurrency=options.concurrency,
        lease_s=options.lease_s,
        wait_s=options.wait_ms / 1000.0,
        worker_id=options.worker_id,
    )

    def handler(job: Job) -> Dict[str, object]:
        return run_command(job, options.command, options.args)

    try:
        worker.run(handler, once=options.once)
    except PieError:
        return 1  # already logged by the worker
    return 0
