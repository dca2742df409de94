"""``python -m server.cli``."""

from server.cli import main

raise SystemExit(main())
