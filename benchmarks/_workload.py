"""The workload every kernel-benchmark variant runs: the same messages, tools and server.

One "send" = a user message asking for the ``lookup`` tool, the model's tool call, the
tool result, and the model's final answer: two LLM calls and four committed messages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

SYSTEM_PROMPT = "You are a benchmark assistant. Use tools when asked."
MODEL = "fake-model"
MAX_TOKENS = 512
TOOLS: list[dict[str, Any]] = [{
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a key up.",
        "parameters": {"type": "object", "properties": {"key": {"type": "string", "description": "The key."}},
                       "required": ["key"], "additionalProperties": False},
    },
}]


def user_text(i: int) -> str:
    return f"call lookup key=k{i}"


def lookup(key: str) -> dict[str, Any]:
    return {"key": key, "value": f"value-of-{key}", "found": True}


def tool_output(args_json: str) -> str:
    return json.dumps(lookup(**json.loads(args_json)), ensure_ascii=False)


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def pin_server(pid: int) -> None:
    """Keep the fake server off the measured client's CPU (when there are two or more).

    The client is measured in CPU time; a server running on the same core (or switching
    in and out of it) inflates that time by a varying amount, more for concurrent clients
    that keep it busy. Every variant gets the same arrangement.
    """
    cpus = _cpus()
    if len(cpus) >= 2:
        os.sched_setaffinity(pid, cpus[1:])


def client_prefix() -> list[str]:
    """Pins a measured worker (all its threads) to the first CPU, apart from the server."""
    cpus = _cpus()
    return [sys.executable, "-c", f"import os, runpy, sys; os.sched_setaffinity(0, {{{cpus[0]}}});"
            " sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"] \
        if len(cpus) >= 2 else [sys.executable, "-m"]


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "power_loop.testing.fake_server", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    pin_server(proc.pid)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("FAKE_LLM_URL="):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, line.split("=", 1)[1]


def run_worker(args: list[str]) -> dict[str, Any]:
    """Run ``python -m benchmarks.kernel_worker ARGS`` and parse its JSON result line."""
    out = subprocess.run([*client_prefix(), "benchmarks.kernel_worker", *args], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{out.stdout}\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
