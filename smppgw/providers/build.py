"""Provider adapters built from the config: what `smppgw check-config`, a reload and a
starting process all do with a file before they use it."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from smppgw.config import PROVIDER_TYPES, Config, ProviderSettings, load
from smppgw.providers.base import Provider


def adapter_class(type_name: str) -> Any:
    """The adapter class of a provider `type` (its module imported now)."""
    module, _, cls = PROVIDER_TYPES[type_name].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_provider(settings: ProviderSettings, clock: Any) -> Provider:
    cls = adapter_class(settings.type)
    provider = cls(settings, clock=clock) if settings.type == "simulator" else cls(settings)
    # The same two limits for every provider, whatever the adapter reads itself.
    overrides = {}
    for key in ("max_concurrency", "requests_per_second"):
        if key in settings.options:
            kind = int if key == "max_concurrency" else (int, float)
            value = settings.get(key, kind)
            if value <= 0:
                raise settings.error(key, f"a number > 0, got {value}")
            overrides[key] = value
    if overrides:
        provider.limits = dataclasses.replace(provider.limits, **overrides)
    return provider


def load_checked(path: str, clock: Any) -> tuple[Config, dict[str, Provider]]:
    """Everything `smppgw check-config` checks: parse and validate the file, then build every
    provider adapter (each checks its own options). Raises ConfigError."""
    config = load(path)
    providers = {name: build_provider(s, clock) for name, s in config.providers.items()}
    return config, providers
