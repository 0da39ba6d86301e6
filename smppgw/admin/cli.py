"""`smppgw status | message | reload | provider pause|resume | backup`: the admin API from a
terminal (stdlib urllib), and an online copy of the SQLite store.

The token comes from --token or, better (a command line is visible to other users), from the
environment variable SMPPGW_ADMIN_TOKEN. It is sent only in the Authorization header.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENV = "SMPPGW_ADMIN_TOKEN"


class CliError(Exception):
    def __init__(self, text: str, code: int = 1) -> None:
        super().__init__(text)
        self.code = code


def call(args: argparse.Namespace, method: str, path: str) -> tuple[int, dict[str, Any]]:
    """One admin API call: (HTTP status, JSON body). CliError when it cannot be made."""
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise CliError(f"no admin token: set {TOKEN_ENV} or give --token", 2)
    url = args.url.rstrip("/") + "/admin/" + path
    req = urllib.request.Request(
        url,
        method=method,
        data=b"" if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read() or b"{}")
        except ValueError:
            body = {"error": e.reason}
        if e.code == 401:
            raise CliError(f"{args.url}: refused: missing or wrong admin token (401)") from None
        if e.code == 403:
            raise CliError(f"{args.url}: refused: this host is not in [admin] allow (403)") from None
        if e.code == 404 and "error" in body and body.get("error") == "not found":
            raise CliError(f"{url}: not found (is [admin] token set on that gateway?)") from None
        return e.code, body
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise CliError(f"cannot reach {args.url}: {reason}") from None


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def utc(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _short(ts: str | None) -> str | None:
    return None if ts is None else ts.replace("T", " ")


def render_status(sessions: list[dict], accounts: list[dict], providers: list[dict]) -> str:
    out = [f"Sessions ({len(sessions)} bound)"]
    out.append(
        table(
            [
                "ACCOUNT",
                "BIND",
                "PEER",
                "BOUND SINCE (UTC)",
                "WINDOW",
                "SUBMIT/S",
                "RCPT/S",
                "SUBMITS",
                "RECEIPTS",
            ],
            [
                [
                    s["account"],
                    s["bind"],
                    s["peer"],
                    _short(s["bound_since"]),
                    f"{s['window']['in_use']}/{s['window']['size']}",
                    s["submits_per_s"],
                    s["receipts_per_s"],
                    s["submits_total"],
                    s["receipts_total"],
                ]
                for s in sessions
            ],
        )
    )
    out.append("")
    out.append(f"Accounts ({len(accounts)})")
    rows = []
    for a in accounts:
        t = a["throttle"]
        limit = f"{t['throughput']:g}/s burst {t['burst']:g}" if t["throughput"] else "none"
        age = a["oldest_receipt_age_s"]
        rows.append(
            [
                a["account"],
                a["bound"].get("transmitter", 0),
                a["bound"].get("receiver", 0),
                a["bound"].get("transceiver", 0),
                a["max_binds"],
                a["outbox_depth"],
                None if age is None else f"{age:g}s",
                limit,
                t["tokens"],
                t["refusals"],
            ]
        )
    out.append(
        table(
            ["ACCOUNT", "TX", "RX", "TRX", "MAX", "OUTBOX", "OLDEST", "THROTTLE", "TOKENS", "REFUSED"], rows
        )
    )
    out.append("")
    out.append(f"Providers ({len(providers)})")
    rows = []
    for p in providers:
        err = p["last_error"]
        balance = ", ".join(f"{b['amount']:g} {b['currency']}" for b in p["balance"] or []) or None
        state = "removed" if p["removed"] else ("paused" if p["paused"] else "active")
        rows.append(
            [
                p["provider"],
                p["type"],
                state,
                p["circuit"],
                p["in_flight"],
                p["queue"],
                p["requests_per_s"],
                p["requests_total"],
                p["messages_sent"],
                balance,
                None if err is None else f"{_short(err['at'])} {err['outcome']}: {err['detail']}",
            ]
        )
    headers = ["PROVIDER", "TYPE", "STATE", "CIRCUIT", "IN FLIGHT", "QUEUE", "REQ/S", "REQUESTS", "SENT"]
    out.append(table([*headers, "BALANCE", "LAST ERROR"], rows))
    return "\n".join(out)


def render_message(message: dict[str, Any], trail: list[dict[str, Any]]) -> str:
    keys = [k for k in message if not k.endswith("_utc")]
    width = max(len(k) for k in keys)
    lines = [f"Message {message['id']}"]
    for k in keys:
        value = message[k]
        if f"{k}_utc" in message and value is not None:
            value = f"{message[f'{k}_utc']} ({value})"
        lines.append(f"  {k.ljust(width)}  {'-' if value is None else value}")
    lines.append("")
    lines.append(f"Trail ({len(trail)} events)")
    rows = [
        [utc(e["at"]), e["event"], " ".join(f"{k}={v}" for k, v in (e.get("detail") or {}).items())]
        for e in trail
    ]
    lines.append(table(["TIME (UTC)", "EVENT", "DETAIL"], rows) if rows else "  (no events recorded)")
    return "\n".join(lines)


# -- commands ---------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    parts = {}
    for name in ("sessions", "accounts", "providers"):
        status, body = call(args, "GET", name)
        if status != 200:
            raise CliError(f"{name}: HTTP {status}: {body.get('error', body)}")
        parts[name] = body[name]
    print(render_status(parts["sessions"], parts["accounts"], parts["providers"]))
    return 0


def cmd_message(args: argparse.Namespace) -> int:
    status, body = call(args, "GET", "messages/" + urllib.request.quote(args.id, safe=""))
    if status == 404:
        print(f"no message {args.id!r}", file=sys.stderr)
        return 1
    if status != 200:
        raise CliError(f"HTTP {status}: {body.get('error', body)}")
    print(render_message(body["message"], body["trail"]))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    status, body = call(args, "POST", "reload")
    if status == 400:
        print(body.get("error", "config error"), file=sys.stderr)
        print("nothing changed: the gateway keeps its running config", file=sys.stderr)
        return 2
    if status != 200:
        raise CliError(f"HTTP {status}: {body.get('error', body)}")
    print(f"reloaded {body.get('config', '')}")
    for key, title in (
        ("changed", "changed"),
        ("added", "added"),
        ("removed", "removed"),
        ("needs_restart", "needs restart (ignored until then)"),
    ):
        items = body.get(key) or []
        print(f"  {title}: {', '.join(items) if items else '-'}")
    if body.get("sessions_unbound"):
        print(f"  sessions unbound (account removed): {body['sessions_unbound']}")
    for name, m in (body.get("retired") or {}).items():
        print(f"  retired {name}: {m['moved']} queued moved to their next provider, {m['waiting']} wait")
    return 0


def cmd_provider(args: argparse.Namespace) -> int:
    name = urllib.request.quote(args.name, safe="")
    status, body = call(args, "POST", f"providers/{name}/{args.action}")
    if status == 404:
        print(body.get("error", f"no provider {args.name!r}"), file=sys.stderr)
        return 1
    if status != 200:
        raise CliError(f"HTTP {status}: {body.get('error', body)}")
    if args.action == "pause":
        print(
            f"paused {args.name}: {body['moved']} queued message(s) moved to their next provider,"
            f" {body['waiting']} wait for resume"
        )
        for r in body["routes"]:
            print(f"  route {r['route']} [{', '.join(r['providers'])}]: new messages {r['messages']}")
    else:
        print(f"resumed {args.name}: {body['released']} waiting message(s) go out again")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from smppgw.config import ConfigError, load

    try:
        config = load(args.config)
    except ConfigError as e:
        raise CliError(f"config error: {e}", 2) from None
    if config.store.type != "sqlite":
        raise CliError(
            f'{args.config}: store.type is "{config.store.type}": backup copies a SQLite store; '
            "back Redis up with its own persistence (AOF files, BGSAVE and the RDB file)",
            2,
        )
    src = Path(config.store.path)
    dest = Path(args.file)
    if not src.is_file():
        raise CliError(f"{args.config}: store.path {str(src)!r} does not exist (nothing to copy)", 2)
    if dest.exists() and dest.resolve() == src.resolve():
        raise CliError("the backup file must not be the store itself", 2)
    if dest.exists() and not args.force:
        raise CliError(f"{dest} exists (--force to replace it)", 2)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    source = sqlite3.connect(src, timeout=10)  # never written: WAL lets the gateway write on
    try:
        copy = sqlite3.connect(tmp)
        try:
            source.backup(copy)  # one step: a consistent snapshot as of its read transaction
            copy.execute("PRAGMA journal_mode=DELETE")  # the copy is one self-contained file
            pages = copy.execute("PRAGMA page_count").fetchone()[0]
            size = copy.execute("PRAGMA page_size").fetchone()[0] * pages
            check = copy.execute("PRAGMA quick_check").fetchone()[0]
            counts = {
                t: copy.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("messages", "outbox")
            }
        finally:
            copy.close()
    finally:
        source.close()
    tmp.replace(dest)
    print(
        f"copied {src} to {dest}: {pages} pages ({size / 1024:.0f} KiB), {counts['messages']} messages,"
        f" {counts['outbox']} deliver_sm waiting; integrity {check}"
    )
    return 0 if check == "ok" else 1


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except CliError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.code

    return run


def add_commands(sub: Any) -> None:
    """Add the admin commands to the `smppgw` parser's subcommands."""

    def api(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--url", default=DEFAULT_URL, help="the gateway's admin base URL (default: %(default)s)"
        )
        p.add_argument(
            "--token", default="", help=f"admin token (better: the {TOKEN_ENV} environment variable)"
        )
        p.add_argument("--timeout", type=float, default=10.0, help="seconds (default: %(default)s)")
        return p

    api(
        sub.add_parser("status", help="bound sessions, accounts and providers of a running gateway")
    ).set_defaults(func=_guard(cmd_status))
    m = api(sub.add_parser("message", help="one message's record and trail"))
    m.add_argument("id", help="the message_id the gateway issued")
    m.set_defaults(func=_guard(cmd_message))
    api(sub.add_parser("reload", help="make a running gateway re-read its config file")).set_defaults(
        func=_guard(cmd_reload)
    )
    p = api(sub.add_parser("provider", help="pause or resume a provider of a running gateway"))
    p.add_argument("action", choices=("pause", "resume"))
    p.add_argument("name", help="the provider's [providers.<name>]")
    p.set_defaults(func=_guard(cmd_provider))
    b = sub.add_parser("backup", help="an online copy of the SQLite store (safe while the gateway runs)")
    b.add_argument("file", help="where the copy goes")
    b.add_argument(
        "--config", default="conf/gateway.toml", help="the gateway's config file (default: %(default)s)"
    )
    b.add_argument("--force", action="store_true", help="replace FILE if it exists")
    b.set_defaults(func=_guard(cmd_backup))
