"""The CLI's argument parser: argparse's, but a bad option or value prints one line ``error: <argparse's
message>`` and exits with status 2 (no usage block before it), as every other bad input of the CLI does.
``--help`` is argparse's own. Subcommands' parsers are made of this class too (``add_subparsers`` makes its
parsers of the class of the parser it is called on)."""

from __future__ import annotations

import argparse

from unirex.errors import scrub_secrets


class OneLineErrorParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors are one line on stderr and exit status 2."""

    def error(self, message: str):  # argparse's hook for every usage error
        line = " ".join(scrub_secrets(str(message)).split())  # one line, whatever the value held
        self.exit(2, f"error: {line}\n")


__all__ = ["OneLineErrorParser"]
