"""Provider adapters: one module per HTTP provider, plus the built-in simulator.

Which config `type` names which adapter is `smppgw.config.PROVIDER_TYPES` (the config checks a
file against it without importing any adapter); `build.py` imports an adapter only when a config
names it.
"""
