"""Helpers for the admin API tests: a config written as a real TOML file (reload re-reads it),
a gateway started from it in the test reactor, and blocking HTTP calls for threads."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from smppgw.app import App
from smppgw.config import load

TOKEN = "t0ken-for-the-admin-api-tests"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + "}"


def to_toml(data: dict[str, Any]) -> str:
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, list):
            for item in value:
                out.append(f"[[{key}]]")
                out += [f"{k} = {_value(v)}" for k, v in item.items()]
        elif key in ("accounts", "providers"):
            for name, body in value.items():
                out.append(f"[{key}.{json.dumps(name)}]")
                out += [f"{k} = {_value(v)}" for k, v in body.items()]
        else:
            out.append(f"[{key}]")
            out += [f"{k} = {_value(v)}" for k, v in value.items()]
    return "\n".join(out) + "\n"


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(to_toml(data))
    return path


def start_from_file(path: Path) -> App:
    from twisted.internet import reactor

    app = App(load(path), reactor)
    app.start()
    return app


def request(
    url: str, method: str = "GET", token: str | None = TOKEN, auth: str | None = None
) -> tuple[int, dict[str, Any]]:
    """Blocking: (status, JSON body). `auth` overrides the whole Authorization header."""
    headers = {}
    if auth is not None:
        headers["Authorization"] = auth
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"{}")
        except ValueError:  # not ours (twisted.web's own 404 page)
            return e.code, {"raw": raw.decode("utf-8", "replace")}
