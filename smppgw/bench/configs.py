"""The configs the bench gives the gateways it starts: only keys every compared revision knows,
SQLite or the bench's own Redis, the simulator or the SMS Partner fake as provider."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from smppgw.bench import revs


def gateway_config(
    workdir: Path,
    smpp: int,
    http: int,
    durability: str,
    provider: str = "",
    window: int = 1000,
    store: str = "",
    name: str = "bench.toml",
) -> Path:
    """A config with only keys that every compared revision knows (an unknown key is an error).
    `store`: the [store] table's body (default: SQLite in workdir with `durability`)."""
    path = workdir / name
    store = store or f'path = "{workdir / "bench.db"}"\ndurability = "{durability}"'
    path.write_text(f"""
[server]
port = {smpp}
window = {window}
[http]
port = {http}
[store]
{store}
[log]
level = "warning"
[accounts.bench]
password = "bench"
max_binds = 2000
{provider or simulator()}
""")
    return path


def redis_store(url: str, prefix: str = "", node: str = "") -> str:
    """The [store] body of a Redis store (the bench's own redis-server). The bench empties it
    before every run, so its runs keep the default key prefix, as a deployment's keys are, and
    their AOF bytes per message are a deployment's (a longer prefix is in every key written)."""
    body = f'type = "redis"\nurl = "{url}"' + (f'\nkey_prefix = "{prefix}"' if prefix else "")
    return body + (f'\nnode = "{node}"' if node else "")


def simulator(delay: float = 0.0) -> str:
    return f"""
[providers.sim]
type = "simulator"
delay = {delay}
enroute = false
"""


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for anything a config holds
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise ValueError(f"no TOML for {v!r}")


def default_simulator(path: Path = revs.ROOT / "conf" / "gateway.toml") -> tuple[str, int, float]:
    """conf/gateway.toml's simulator provider (as TOML), its server window and the delay."""
    conf = tomllib.loads(path.read_text())
    sim = next(p for p in conf["providers"].values() if p.get("type") == "simulator")
    body = "\n".join(f"{k} = {toml_value(v)}" for k, v in sim.items())
    return (
        f"\n[providers.sim]\n{body}\n",
        int(conf["server"].get("window", 100)),
        float(sim.get("delay", 1.0)),
    )


HTTP_PROVIDER = """
[providers.partner]
type = "smspartner"
url = "http://127.0.0.1:{port}"
api_key = "bench-key"
max_concurrency = 16
poll_first = 0.5
poll_max_gap = 1
balance_interval = 0
"""
