"""A plugin, as a user writes one: Captum's IntegratedGradients registered under a new name.

``UNIREX_PLUGINS=tests.plugins.ig_alias python -m unirex model.attr_algo=ig-alias ...`` then trains, evaluates,
saves and explains with it exactly as with the built-in ``integrated-gradients`` (tests/test_registry.py)."""

from captum.attr import IntegratedGradients

from unirex.registry import register_attribution

register_attribution("ig-alias", IntegratedGradients, differentiable=True, needs_baseline=True)
