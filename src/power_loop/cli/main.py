"""Command line: ``python -m power_loop {demo,fake-server,db ddl}``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m power_loop", description="power-loop command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a durable session, kill it mid tool call, resume it")
    demo.add_argument("--db", help="SQLite file to use (default: a temporary directory)")
    fake = sub.add_parser("fake-server", help="serve the fake OpenAI-compatible API until killed")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=0)
    db = sub.add_parser("db", help="database utilities")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    ddl = dbsub.add_parser("ddl", help="print the provisioning DDL for a dialect and table prefix")
    ddl.add_argument("--dialect", required=True, help="sqlite, postgres or mysql")
    ddl.add_argument("--table-prefix", "--prefix", dest="table_prefix", default="pl_")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from power_loop.cli.demo import run_demo

        return run_demo(db=args.db)
    if args.command == "fake-server":
        from power_loop.testing.fake_server.__main__ import main as fake_main

        return fake_main(["--host", args.host, "--port", str(args.port)])
    if args.command == "db" and args.db_command == "ddl":
        from power_loop.contracts.errors import PowerLoopError
        from power_loop.store.schema import ddl_script

        try:
            statements = ddl_script(args.dialect, args.table_prefix)
        except PowerLoopError as exc:
            sys.stderr.write(f"error [{exc.code}]: {exc}\n")
            return 2
        sys.stdout.write(";\n".join(statements) + ";\n")
        return 0
    return 2
