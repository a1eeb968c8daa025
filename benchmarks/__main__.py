"""``python -m benchmarks {s1,s2,s3,sql,import,kernel,store,stream}`` — print a table.

``kernel`` runs s1, s2, s3, sql and import together.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "s1": ("benchmarks.kernel_bench", ["s1"]),
    "s2": ("benchmarks.kernel_bench", ["s2"]),
    "s3": ("benchmarks.kernel_bench", ["s3"]),
    "sql": ("benchmarks.kernel_bench", ["sql"]),
    "import": ("benchmarks.kernel_bench", ["import"]),
    "kernel": ("benchmarks.kernel_bench", ["all"]),
    "store": ("benchmarks.store_bench", []),
    "stream": ("benchmarks.stream_bench", []),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__)
        print("commands:", ", ".join(COMMANDS))
        return 2
    module_name, prefix = COMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    return int(module.main([*prefix, *argv[1:]]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
