"""``python -m power_loop.testing.fake_server``: see ``power_loop.testing.fake_server.cli``."""

import sys

from power_loop.testing.fake_server.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
