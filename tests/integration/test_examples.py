"""Every numbered example runs against the bundled fake server, with no API key set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED = {
    "00_hello_world.py": ["status=completed"],
    "01_memory_across_sends.py": ["Your favorite color is teal."],
    "02_tool_calling.py": ["-> get_weather", "status=completed"],
    "03_cold_resume.py": ["[new process] Your favorite color is teal.", "[cold loop]"],
    "04_anthropic.py": ["fake anthropic server", "provider=anthropic status=completed tools=1", "69.8 F"],
    "05_streaming.py": ["streaming: You said:", "tool-call delta #0", "assembled: [{"],
    "06_structured_output.py": ["structured={'name': 'Ada', 'age': 36, 'city': 'London'} error=None",
                                "per-send schema: {'city': 'Paris'}", "reason=wrong_type:age"],
    "07_retry_and_cancel.py": ["retry after attempt 1: sleeping 0.5s", "2) degraded", "3) cancelled",
                               "4) completed", "nothing pending: True"],
}
_PROVIDER_VARS = ("POWER_LOOP_", "OPENAI_COMPAT_", "OPENAI_", "ANTHROPIC_")


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PROVIDER_VARS)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("[0-9]*.py")))
def test_example_runs_against_the_fake_server(example: str) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / example)], capture_output=True, text=True,
                          env=_offline_env(), cwd=EXAMPLES, timeout=120, check=False)
    assert proc.returncode == 0, f"{example} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{example} printed nothing"
    for expected in EXPECTED.get(example, []):
        assert expected in proc.stdout, f"{example}: {expected!r} not in output:\n{proc.stdout}"

