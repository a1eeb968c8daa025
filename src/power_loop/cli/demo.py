"""``python -m power_loop demo``: a durable session, killed mid tool call, resumed.

Uses the real provider when ``POWER_LOOP_API_KEY`` (or ``OPENAI_COMPAT_API_KEY``) is set,
otherwise the bundled fake OpenAI-compatible server, and says which.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _start_fake_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "power_loop.testing.fake_server", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("FAKE_LLM_URL="):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def _agent(db: str, phase: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "power_loop.cli.demo_agent", "--db", db, "--phase", phase],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def run_demo(*, db: str | None = None) -> int:
    env = dict(os.environ)
    key = env.get("POWER_LOOP_API_KEY") or env.get("OPENAI_COMPAT_API_KEY")
    fake: subprocess.Popen[str] | None = None
    if key:
        base = env.get("POWER_LOOP_BASE_URL") or env.get("OPENAI_COMPAT_BASE_URL") or "?"
        model = env.get("POWER_LOOP_MODEL") or env.get("OPENAI_COMPAT_MODEL") or "?"
        _say(f"LLM: the real provider at {base} (model {model}), from POWER_LOOP_* variables")
    else:
        fake, url = _start_fake_server()
        env.update(POWER_LOOP_BASE_URL=url, POWER_LOOP_API_KEY="fake-key", POWER_LOOP_MODEL="fake-model",
                   POWER_LOOP_PROVIDER="openai")
        _say(f"LLM: no POWER_LOOP_API_KEY set, so this demo uses the bundled fake OpenAI-compatible server at {url}")
        _say("     (deterministic replies over real HTTP through the official openai SDK; set POWER_LOOP_BASE_URL,")
        _say("      POWER_LOOP_API_KEY and POWER_LOOP_MODEL to run it against a real model)")
    tmp = tempfile.TemporaryDirectory(prefix="power-loop-demo-")
    path = db or str(Path(tmp.name) / "demo.db")
    _say(f"store: SQLite file {path}\n")
    try:
        _say("== process 1: a durable multi-send session ==")
        first = _agent(path, "first", env)
        assert first.stdout is not None
        killed = False
        for line in first.stdout:
            _say("  [process 1] " + line.rstrip())
            if line.startswith("TOOL_STARTED"):
                os.kill(first.pid, signal.SIGKILL)
                killed = True
                _say(f"  >>> SIGKILL sent to process 1 (pid {first.pid}) while its tool call was running")
                break
        first.wait()
        if not killed and first.returncode != 0:
            _say(f"process 1 failed with exit code {first.returncode}")
            return 1
        _say("\n== process 2: a fresh process continues from the DSN and the session id alone ==")
        second = _agent(path, "recover", env)
        assert second.stdout is not None
        for line in second.stdout:
            _say("  [process 2] " + line.rstrip())
        second.wait()
        if second.returncode != 0:
            _say(f"process 2 failed with exit code {second.returncode}")
            return 1
        _say("\nEvery message was committed as it happened; the killed tool call was found unresolved, "
             "run once by resume(), and the session went on.")
        return 0
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(5)
        tmp.cleanup()
