"""The README's demo command works offline: a session killed mid tool call is resumed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_kills_a_send_mid_tool_call_and_a_fresh_process_resumes_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWER_LOOP_", "OPENAI_COMPAT_"))}
    out = subprocess.run([sys.executable, "-m", "power_loop", "demo"], capture_output=True, text=True,
                         timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "bundled fake OpenAI-compatible server" in text
    assert "SIGKILL sent to process 1" in text
    assert "send() refused, as it must: [session.pending]" in text
    assert "resume() ran the tool and finished: status=completed" in text
    assert "send 3 -> 'Your favorite color is teal.'" in text
    transcript = [line for line in text.splitlines() if "[process 2]" in line and line.split()[2:3]
                  and line.split()[2].isdigit()]
    assert [int(line.split()[2]) for line in transcript] == list(range(1, 9))
