"""``python -m power_loop``: demo, fake-server, db ddl."""

from power_loop.cli.main import main

raise SystemExit(main())
