"""Plugin modules for tests/test_registry.py and tests/test_metric_registry.py (named in ``UNIREX_PLUGINS`` there)."""
