"""How a `shipguard` subcommand with examples is added: the examples shown as written."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any


def add_subcommand(sub: Any, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand whose --help shows its examples as written (the description wrapped here)."""
    return sub.add_parser(name, help=help, description=textwrap.fill(description, 88), epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
