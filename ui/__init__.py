"""Gradio tabs: one module per tab; widgets and callbacks only, calling the core library."""
