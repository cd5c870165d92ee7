"""Plugin modules for tests/test_registry.py (named in ``UNIREX_PLUGINS`` there)."""
