"""Reading the rules file: the shell's side of `processors.config`, which only validates.

`load_rules(path)` reads the packaged `rules.toml` or the file named by SHIPGUARD_RULES (the
worker passes `Settings.rules_path`); a file that cannot be read, is not TOML or has a bad key
raises RulesError naming the file and the offending key.
"""

from __future__ import annotations

from pathlib import Path

from processors.config import DEFAULT_RULES_PATH, RulesConfig, RulesError, parse_rules_toml

__all__ = ["DEFAULT_RULES_PATH", "RulesError", "load_rules"]


def load_rules(path: Path | None = None) -> RulesConfig:
    """Read and validate the rules file (default: the packaged rules.toml)."""
    path = path or DEFAULT_RULES_PATH
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from None
    try:
        return parse_rules_toml(text)
    except RulesError as exc:
        raise RulesError(f"{path}: {exc}") from None
