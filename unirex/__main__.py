"""``python -m unirex``: the command line's entry point (the CLI lives in the ``cli`` package, outside
the core; this module is the one place the core package hands over to it)."""

from cli import main

raise SystemExit(main())
