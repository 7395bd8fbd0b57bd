"""The parts of pie_worker that need no PIE: the command line, the command runner, tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import Any, Dict, Optional

from tests.pie_server import PYTHON_ROOT

from pie_worker import Job, JobFailed, mint_token
from pie_worker.cli import Options, UsageError, parse_args
from pie_worker.command import parse_output, run_command
from pie_worker.tokens import TokenUnavailable, worker_token


def run(args: list, env: Optional[Dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    full_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PYTHON_ROOT)}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pie_worker", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )


class CommandLineTest(unittest.TestCase):
    def test_a_bad_command_line_names_the_problem(self) -> None:
        env = {"PIE_TOKEN": "t"}
        cases = [
            (["--version", "1", "--", "true"], "--model is required"),
            (["--model", "m", "--", "true"], "--version is required"),
            (["--model", "m", "--version", "1"], 'after "--"'),
            (["--model", "m", "--version", "1", "--concurrency", "0", "--", "true"],
             '--concurrency must be an integer from 1 to 100, got "0"'),
            (["--model", "m", "--version", "1", "--lease", "4", "--", "true"],
             '--lease must be an integer from 5 to 3600, got "4"'),
            (["--model", "m", "--version", "1", "--wait=30001", "--", "true"],
             '--wait must be an integer from 0 to 30000, got "30001"'),
            (["--model", "m", "--version", "1", "--wait", "1.5", "--", "true"],
             '--wait must be an integer from 0 to 30000, got "1.5"'),
            (["--model", "m", "--version", "1", "--url", "nowhere", "--", "true"],
             '--url must be an absolute URL, got "nowhere"'),
            (["--model", "m", "--version", "1", "--bogus", "--", "true"], "Unknown option '--bogus'"),
            (["--model", "m", "--version", "1", "--once=yes", "--", "true"],
             "'--once' does not take an argument"),
            (["--model", "--version", "1", "--", "true"], "'--model' argument is ambiguous"),
            (["--version", "1", "--model"], "'--model <value>' argument missing"),
        ]
        for args, message in cases:
            with self.assertRaises(UsageError, msg=args) as raised:
                parse_args(args, env)
            self.assertIn(message, str(raised.exception))

    def test_options_and_defaults_are_those_of_pie_worker(self) -> None:
        base = ["--model", "m", "--version", "1"]
        options = parse_args(base + ["--", "python3", "model.py", "--fast"], {})
        self.assertEqual(options.url, "http://127.0.0.1:8080")
        self.assertEqual((options.concurrency, options.lease_s, options.wait_ms), (1, 60, 20000))
        self.assertFalse(options.once)
        self.assertEqual((options.command, options.args), ("python3", ["model.py", "--fast"]))
        self.assertRegex(options.worker_id, r"-%d$" % os.getpid())
        options = parse_args(
            ["--model=m", "--version", "1", "--url", "http://pie:9000/", "--worker-id", "w1",
             "--concurrency", "8", "--lease=30", "--wait", "0", "--once", "node", "x.mjs"],
            {"PIE_URL": "http://ignored"},
        )
        self.assertEqual(
            options,
            Options("http://pie:9000", "m", "1", "w1", 8, 30, 0, True, "node", ["x.mjs"]),
        )
        self.assertEqual(parse_args(base + ["x"], {"PIE_URL": " http://a:1 "}).url, "http://a:1")
        self.assertEqual(
            parse_args(base + ["x"], {"PIE_HOST": "0.0.0.0", "PIE_PORT": "9"}).url,
            "http://127.0.0.1:9",
        )
        self.assertEqual(
            parse_args(base + ["x"], {"PIE_HOST": "::1"}).url,
            "http://[::1]:8080",
        )

    def test_the_command_line_exits_2_on_usage_errors_and_0_on_help(self) -> None:
        done = run(["--model", "m", "--", "true"], {"PIE_TOKEN": "t"})
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertEqual(done.stderr, "pie_worker: --version is required\n")
        # No PIE_TOKEN and no secret to sign one with.
        with tempfile.TemporaryDirectory() as empty:
            done = run(["--model", "m", "--version", "1", "--", "true"], {"PIE_DATA_DIR": empty})
        self.assertEqual(done.returncode, 2)
        self.assertIn("set PIE_TOKEN to a token with scope jobs:complete for model m", done.stderr)
        helped = run(["--help"])
        self.assertEqual(helped.returncode, 0)
        self.assertIn("--concurrency 1", helped.stdout)


def local_job(job_input: Optional[Dict[str, Any]] = None) -> Job:
    return Job(
        {
            "job_id": "123456789012",
            "attempt": 2,
            "job_type": "inference",
            "model_id": "m",
            "model_version": "1",
            "input": job_input or {},
            "features": {"route": "r1"},
            "deadline": "2999-01-01T00:00:00.000Z",
            "callback": {
                "url": "http://x/complete",
                "heartbeat_url": "http://x/heartbeat",
                "token": "t",
            },
        }
    )


class CommandTest(unittest.TestCase):
    """run_command as PIE's command handler runs one (src/dispatch/handlers/command.handler.ts)."""

    def python(self, code: str) -> list:
        return ["-c", code]

    def test_the_envelope_goes_in_on_stdin_and_json_on_stdout_is_the_output(self) -> None:
        code = (
            "import json, os, sys\n"
            "envelope = json.load(sys.stdin)\n"
            "print(json.dumps({'id': envelope['job_id'], 'input': envelope['input'],"
            " 'env': [os.environ.get('PIE_JOB_ID'), os.environ.get('PIE_JOB_ATTEMPT')],"
            " 'secrets': [name for name in ('PIE_TOKEN', 'PIE_JWT_SECRET', 'DATABASE_URL')"
            " if name in os.environ]}))\n"
        )
        os.environ["PIE_TOKEN"] = "must-not-leak"
        try:
            output = run_command(local_job({"x": 1}), sys.executable, self.python(code))
        finally:
            del os.environ["PIE_TOKEN"]
        self.assertEqual(
            output,
            {"id": "123456789012", "input": {"x": 1}, "env": ["123456789012", "2"], "secrets": []},
        )

    def test_output_that_is_not_a_json_object_is_kept_as_text(self) -> None:
        self.assertEqual(parse_output(b" [1, 2]\n"), {"stdout": "[1, 2]"})
        self.assertEqual(parse_output(b"hello"), {"stdout": "hello"})
        self.assertEqual(parse_output(b'{"a": 1}'), {"a": 1})

    def test_a_non_zero_exit_is_a_failure_with_the_code_and_the_tail_of_stderr(self) -> None:
        code = "import sys; sys.stdin.read(); sys.stderr.write('x' * 5000 + 'the end'); sys.exit(3)"
        with self.assertRaises(JobFailed) as raised:
            run_command(local_job(), sys.executable, self.python(code))
        error = raised.exception.error
        self.assertEqual(error["code"], "exit")
        self.assertEqual(error["message"], "the command exited with code 3")
        self.assertEqual(error["exit_code"], 3)
        self.assertIsNone(error["signal"])
        self.assertEqual(len(error["stderr_tail"]), 2048)
        self.assertTrue(error["stderr_tail"].endswith("the end"))

    def test_a_command_killed_by_a_signal_says_which(self) -> None:
        code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
        with self.assertRaises(JobFailed) as raised:
            run_command(local_job(), sys.executable, self.python(code))
        error = raised.exception.error
        self.assertEqual(
            (error["code"], error["exit_code"], error["signal"]), ("exit", None, "SIGKILL")
        )
        self.assertEqual(error["message"], "the command was killed by SIGKILL")

    def test_a_command_that_cannot_start_fails_with_spawn(self) -> None:
        with self.assertRaises(JobFailed) as raised:
            run_command(local_job(), "/nonexistent/model")
        error = raised.exception.error
        self.assertEqual(error["code"], "spawn")
        self.assertEqual(error["errno"], "ENOENT")
        self.assertIn('could not start "/nonexistent/model"', error["message"])

    def test_too_much_stdout_fails_the_job(self) -> None:
        code = "import sys, time; sys.stdout.write('x' * 5000); sys.stdout.flush(); time.sleep(30)"
        started = time.monotonic()
        with self.assertRaises(JobFailed) as raised:
            run_command(local_job(), sys.executable, self.python(code), max_output_bytes=1000)
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(
            raised.exception.error,
            {
                "code": "output_too_large",
                "message": "the command wrote more than 1000 bytes to stdout",
                "max_output_bytes": 1000,
            },
        )

    def test_a_cancel_stops_the_process_group(self) -> None:
        job = local_job()
        code = "import sys, time; sys.stdin.read(); print('started', flush=True); time.sleep(30)"
        timer = threading.Timer(0.5, job._stop, ("cancelled", "heartbeat refused: 409 cancelled"))
        timer.start()
        started = time.monotonic()
        with self.assertRaises(JobFailed) as raised:
            run_command(job, sys.executable, self.python(code))
        self.assertLess(time.monotonic() - started, 3)
        error = raised.exception.error
        self.assertEqual(error["code"], "aborted")
        self.assertEqual(error["signal"], "SIGTERM")
        self.assertIn("heartbeat refused", error["message"])

    def test_a_deadline_stops_the_process_as_a_timeout(self) -> None:
        job = local_job()
        with tempfile.TemporaryDirectory() as folder:
            ready = os.path.join(folder, "ready")
            # The deadline comes once the command ignores SIGTERM: a timer alone raced the
            # child's start-up on a busy machine, and SIGTERM then ended it before it ignored it.
            code = (
                "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                " open(sys.argv[1], 'w').close(); sys.stdin.read(); time.sleep(30)"
            )
            stopped_at = []

            def stop_when_ready() -> None:
                give_up = time.monotonic() + 20
                while not os.path.exists(ready) and time.monotonic() < give_up:
                    time.sleep(0.02)
                stopped_at.append(time.monotonic())
                job._stop("timeout", "the job passed its deadline")

            threading.Thread(target=stop_when_ready, daemon=True).start()
            with self.assertRaises(JobFailed) as raised:
                run_command(job, sys.executable, [*self.python(code), ready])
            ended = time.monotonic()
        # SIGTERM is ignored: SIGKILL follows after the 2 s grace, long before the 30 s sleep ends.
        self.assertEqual(len(stopped_at), 1)
        self.assertGreaterEqual(ended - stopped_at[0], 1.9)
        self.assertLess(ended - stopped_at[0], 10)
        error = raised.exception.error
        self.assertEqual((error["code"], error["signal"]), ("timeout", "SIGKILL"))


class TokenTest(unittest.TestCase):
    def test_a_minted_token_is_an_hs256_jwt_with_pies_claims(self) -> None:
        token = mint_token(
            b"s" * 32, subject="w", scopes=["jobs:complete"], models=["m"], ttl_s=60, now=1000
        )
        header, payload, signature = token.split(".")
        def decode(part: str) -> Any:
            return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

        self.assertEqual(decode(header), {"alg": "HS256", "typ": "JWT"})
        self.assertEqual(
            decode(payload),
            {
                "scope": "jobs:complete",
                "models": ["m"],
                "sub": "w",
                "iss": "pie",
                "aud": "pie",
                "iat": 1000,
                "exp": 1060,
            },
        )
        expected = hmac.new(b"s" * 32, (header + "." + payload).encode(), hashlib.sha256).digest()
        self.assertEqual(base64.urlsafe_b64decode(signature + "=="), expected)

    def test_the_worker_token_is_pie_token_else_minted_from_the_shared_secret(self) -> None:
        self.assertEqual(worker_token("m", "w", {"PIE_TOKEN": " given "})(), "given")
        with tempfile.TemporaryDirectory() as folder:
            with self.assertRaises(TokenUnavailable):
                worker_token("m", "w", {"PIE_DATA_DIR": folder})
            with open(os.path.join(folder, "jwt-secret"), "w") as file:
                file.write("file-secret-" + "x" * 30 + "\n")
            minted = worker_token("m", "w", {"PIE_DATA_DIR": folder})()
            header, payload, signature = minted.split(".")
            secret = ("file-secret-" + "x" * 30).encode()
            signed = (header + "." + payload).encode()
            expected = hmac.new(secret, signed, hashlib.sha256).digest()
            self.assertEqual(base64.urlsafe_b64decode(signature + "=="), expected)
            with self.assertRaises(TokenUnavailable):  # PIE verifies with a public key
                worker_token("m", "w", {"PIE_DATA_DIR": folder, "PIE_JWKS_URL": "https://idp/jwks"})
        with self.assertRaises(TokenUnavailable):
            worker_token("m", "w", {"PIE_JWT_SECRET": "short"})
