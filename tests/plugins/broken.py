"""A plugin that fails when imported (tests/test_registry.py checks the one-line error)."""

raise RuntimeError("this plugin is broken on purpose\nsecond line of the message")
