"""Gateway processes sharing one Redis, for the cluster tests: each a real `smppgw serve` on free
loopback ports with a config of its own (its node name, its ports) and the same [store]."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.test_restart import ROOT, free_port, start


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


class Node:
    def __init__(self, tmp_path: Path, name: str, store: dict[str, Any], **extra: Any) -> None:
        self.name = name
        self.smpp, self.http = free_port(), free_port()
        self.config = tmp_path / f"{name}.toml"
        self.log = tmp_path / f"{name}.log"
        store = {**store, "node": name}
        accounts = extra.pop("accounts", {"demo": {"password": "demo"}})
        providers = extra.pop("providers", {"sim": {"type": "simulator", "delay": 0.3}})
        lines = [
            f"[server]\nport = {self.smpp}\nresponse_timeout = 5",
            f"[http]\nport = {self.http}",
            "[store]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in store.items()),
            '[log]\nlevel = "info"',
        ]
        for name_, table in accounts.items():
            lines.append(
                f"[accounts.{name_}]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in table.items())
            )
        for name_, table in providers.items():
            lines.append(
                f"[providers.{name_}]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in table.items())
            )
        lines.append("[[routes]]\nproviders = " + json.dumps(list(providers)))
        for section, table in extra.items():
            lines.append(f"[{section}]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in table.items()))
        self.config.write_text("\n\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        self.proc = start(self.config, self.smpp, log=self.log)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9

    def health(self) -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz", timeout=2).status
        except urllib.error.HTTPError as e:
            return e.code

    def metric(self, name: str, **labels: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.http}/metrics", timeout=5).read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if all(f'{k}="{v}"' in line for k, v in labels.items()):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


__all__ = ["Node", "ROOT", "sys"]
