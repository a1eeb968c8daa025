"""The fake LLM server as its own process: the command-line entry point.

``python -m power_loop.testing.fake_server --port 0`` prints one line
``FAKE_LLM_URL=http://127.0.0.1:PORT/v1``, flushes, and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from power_loop.testing.fake_server.server import FakeLLMServer

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until interrupted, return the exit status (0)."""
    parser = argparse.ArgumentParser(
        prog="python -m power_loop.testing.fake_server",
        description="A deterministic OpenAI-compatible LLM server for demos and tests (no API key needed).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--model", default="fake-model", help="model name to answer with")
    parser.add_argument("--stream-chunk-chars", type=int, default=None,
                        help="stream text in deltas of this many characters (default: a few deltas)")
    args = parser.parse_args(argv)

    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    server = FakeLLMServer(host=args.host, port=args.port, model=args.model, max_recorded_requests=0,
                           stream_chunk_chars=args.stream_chunk_chars)
    url = server.start()
    sys.stdout.write(f"FAKE_LLM_URL={url}\n")
    sys.stdout.flush()
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
