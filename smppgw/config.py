"""TOML configuration to typed objects (filled in below)."""

from __future__ import annotations


class ConfigError(Exception):
    """A config problem, naming the file, the key and what was expected."""

    def __init__(self, source: str, key: str, expected: str) -> None:
        super().__init__(f"{source}: {key}: expected {expected}")
        self.source, self.key, self.expected = source, key, expected
