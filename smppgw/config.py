"""TOML configuration to typed, frozen objects.

Every error names the file, the key (dotted path) and what was expected, so an operator can
fix the file without reading code. `${NAME}` in any string is replaced by the environment
variable NAME (for passwords and API keys kept out of the file); the error for a missing
variable names the variable, never a value.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from smppgw.smpp.text import CHARSETS

# A [providers.<name>] table's `type` -> its adapter, as "module:Class" (imported only when a
# config names it, by smppgw.providers.build). A new provider adds its line here.
PROVIDER_TYPES = {
    "simulator": "smppgw.providers.simulator:Simulator",
    "smsfly": "smppgw.providers.smsfly:SmsFly",
    "smsclub": "smppgw.providers.smsclub:SmsClub",
    "smsend": "smppgw.providers.smsend:SmSend",
    "floppysend": "smppgw.providers.floppysend:FloppySend",
    "smspartner": "smppgw.providers.smspartner:SmsPartner",
}


class ConfigError(Exception):
    """A config problem, naming the file, the key and what was expected."""

    def __init__(self, source: str, key: str, expected: str) -> None:
        super().__init__(f"{source}: {key}: expected {expected}")
        self.source, self.key, self.expected = source, key, expected


class ReloadRefused(Exception):
    """A running process refused a new config file: it did not pass check-config (str() is the
    text check-config prints); the config in force stays."""


@dataclass
class ProviderSettings:
    """One [providers.<name>] table of the config, for an adapter's constructor.

    `options` holds every key of the table but `type` and `url`, with ${ENV} references
    already replaced. Adapters read them through `get`, which names the file and the key in
    its error, so a typo is reported as a config error, not a crash.
    """

    name: str
    type: str
    url: str
    options: dict[str, Any] = field(default_factory=dict, repr=False)  # may hold credentials
    source: str = "<config>"  # the config file's path, for errors
    timeout: float = 10.0  # seconds per HTTP request
    # Read by the gateway, not the adapter:
    webhook_secret: str = field(default="", repr=False)  # required in the webhook URL or X-Webhook-Secret
    webhook_allow: tuple[str, ...] = ()  # source networks allowed to call the webhook; empty: any
    balance_interval: float = 300.0  # seconds between balance polls (0: never)
    senders_interval: float = 600.0  # seconds between sender-list refreshes (0: never)
    inbound_interval: float = 15.0  # seconds between MO polls where the API has one (0: never)
    poll_first: float = 5.0  # seconds from acceptance to the first status poll
    poll_max_gap: float = 600.0  # longest gap between two polls of one message
    prices: dict[str, float] = field(default_factory=dict)  # destination prefix -> price (least-cost)
    networks: dict[str, str] = field(
        default_factory=dict
    )  # destination prefix -> "mcc-mnc" (published prices)
    prices_interval: float = 3600.0  # seconds between price-list fetches where the API has one (0: never)

    def get(
        self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, secret: bool = False
    ) -> Any:
        if key not in self.options:
            if default is ...:
                raise self.error(key, f"a {_kind_name(kind)} (required for type {self.type!r})")
            return default
        value = self.options[key]
        if (
            isinstance(value, bool)
            and kind is not bool
            and bool not in (kind if isinstance(kind, tuple) else ())
        ):
            raise self.error(key, f"a {_kind_name(kind)}, got a boolean")
        if not isinstance(value, kind):
            shown = "<hidden>" if secret else repr(value)
            raise self.error(key, f"a {_kind_name(kind)}, got {shown}")
        return value

    def error(self, key: str, expected: str) -> Exception:
        """A ConfigError naming the file and `providers.<name>.<key>`, for adapters' own checks."""
        return ConfigError(self.source, f"providers.{self.name}.{key}", expected)

    def zone(self, key: str, default: str) -> tzinfo:
        """An IANA time zone option ("UTC" needs no tz database)."""
        name = self.get(key, str, default)
        try:
            return UTC if name.upper() == "UTC" else ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.error(key, "an IANA zone name known here (install tzdata, or use UTC)") from None


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "table"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    max_pdu_length: int = 70_000
    session_init_timeout: float = 60.0  # seconds from connect to bind
    enquire_link_interval: float = 60.0  # our enquire_link after this much silence
    inactivity_timeout: float = 300.0  # no PDU from the ESME for this long: unbind and close
    response_timeout: float = 30.0  # an answer to our request must come within this
    window: int = 100  # outstanding requests per session, each direction
    tls_port: int | None = None  # SMPP over TLS (1.2+) on its own port, same accounts; None: off
    tls_cert: str = ""  # PEM certificate (chain) file for the TLS port
    tls_key: str = ""  # PEM private key file for the TLS port
    # password guessing, per source address (server/guard.py)
    bind_fail_delay: float = 0.5  # a refused bind's answer waits this long, doubled per failure (0: off)
    bind_fail_delay_max: float = 8.0
    bind_lockout_after: int = 10  # failures in a row that refuse the address's binds for a while (0: never)
    bind_lockout_seconds: float = 300.0
    # floods: connections beyond these are closed at once (0: no cap)
    max_connections: int = 10_000  # open SMPP connections, bound or not
    max_unbound: int = 1_000  # connections that have not bound (yet), from all addresses
    max_unbound_per_ip: int = 50  # of those, from one source address


@dataclass(frozen=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # `serve --workers N`: worker i also serves this site on port worker_ports_from + i, so each
    # worker's /metrics can be scraped (the shared port reaches one worker at random); None: off
    worker_ports_from: int | None = None


@dataclass(frozen=True)
class AdminConfig:
    """The admin API (live view, reload, pause/resume). Off while `token` is empty."""

    token: str = field(default="", repr=False)  # Bearer token every admin call must carry
    allow: tuple[str, ...] = ()  # peer networks (CIDR) allowed to call it; empty: any
    host: str = "127.0.0.1"  # its own listener, when `port` is set
    port: int | None = None  # None: served on the [http] listener under /admin


@dataclass(frozen=True)
class StoreConfig:
    type: str = "sqlite"  # "sqlite" (one process) or "redis" (several processes share it)
    path: str = "var/smppgw.db"
    durability: str = "normal"  # "normal": survives kill -9; "fsync": survives power loss too
    max_batch: int = 2000  # writes grouped into one commit at most
    keep_final: float = 7 * 86400.0  # seconds a final message (and its trail) is kept
    purge_batch: int = 500  # rows looked at per purge transaction
    purge_every: float = 60.0  # seconds between retention passes
    # redis only
    url: str = field(default="", repr=False)  # redis://[:password@]host:port/db (may hold a password)
    key_prefix: str = "smppgw:"
    claim_after: float = 30.0  # seconds without a heartbeat before other processes take over
    node: str = ""  # this process's name among those sharing the store; "": host name + pid
    wait_replicas: int = 0  # replicas that must have each commit (WAIT) before it counts
    wait_timeout: float = 1.0  # seconds WAIT may take
    cluster: bool = False  # a Redis Cluster (also: a redis+cluster:// URL); keys split in partitions
    partitions: int = 12  # cluster only: message partitions (hash tags), fixed for a cluster's life

    @property
    def where(self) -> str:
        """The store's file or server, fit for a log line (a password in the URL is hidden)."""
        if self.type != "redis":
            return self.path
        url = urlsplit(self.url)
        if url.password is None:
            return self.url
        host = url.hostname or ""
        netloc = f"{url.username or ''}:***@{host}" + (f":{url.port}" if url.port else "")
        return url._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class ReceiptConfig:
    max_age: float = 3 * 24 * 3600.0  # seconds a receipt waits for a receiver to bind
    max_per_account: int = 100_000  # receipts held for one account; the oldest go first
    retry_initial: float = 5.0  # first resend after a temporary deliver_sm_resp error
    retry_max: float = 300.0


@dataclass(frozen=True)
class DispatchConfig:
    max_attempts: int = 10  # provider attempts for a retryable failure before UNDELIV
    retry_initial: float = 1.0
    retry_max: float = 300.0
    status_horizon: float = 72 * 3600.0  # no final status by then: final UNKNOWN
    breaker_threshold: int = 5  # failed requests in a row that open a provider's circuit breaker
    breaker_cooldown: float = 30.0  # seconds before an open breaker lets one trial request through


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "kv"  # "kv" (key=value) or "json"


@dataclass(frozen=True)
class Account:
    system_id: str
    password: str = field(repr=False)  # plaintext or a hash from `smppgw hash-password`
    max_binds: int = 10
    message_id_format: str = "decimal"  # "decimal" or "hex"
    message_id_length: int = 10
    ack: str = "stored"  # "stored" or "provider"
    strict_senders: bool = False  # refuse a source the provider's sender list does not hold
    dc0_charset: str = "gsm"  # data_coding 0: "gsm" (unpacked), "gsm-packed", "latin-1" or "ascii"
    dc1_charset: str = "ascii"  # data_coding 1 (IA5); some clients (node-smpp) send GSM bytes here
    long_mo: str = "udh"  # our long deliver_sm as "udh" parts, "sar" parts or one "payload"
    throughput: float = 0.0  # submits per second for the whole account (token bucket); 0: no limit
    burst: int = 0  # bucket size; 0: one second's worth of throughput
    reassembly_timeout: float = 60.0  # seconds to wait for the rest of a long message's parts
    intermediate_esm_class: int = 0x04  # esm_class of ENROUTE receipts: 0x04 (default) or 0x20


@dataclass(frozen=True)
class Route:
    providers: tuple[str, ...]
    accounts: tuple[str, ...] = ()  # empty: any account
    prefixes: tuple[str, ...] = ()  # destination prefixes; empty: any
    sources: tuple[str, ...] = ()  # source addresses; empty: any
    weights: tuple[float, ...] = ()  # a weighted split over providers instead of failover order
    least_cost: bool = False  # order providers by their price for the destination


@dataclass(frozen=True)
class InboundRoute:
    """MO messages to these numbers (our numbers, SIMs, short codes) go to this account."""

    account: str
    numbers: tuple[str, ...]  # exact numbers; "*" catches the rest
    providers: tuple[str, ...] = ()  # empty: from any provider


@dataclass(frozen=True)
class Config:
    source: str
    server: ServerConfig
    http: HttpConfig
    store: StoreConfig
    receipts: ReceiptConfig
    dispatch: DispatchConfig
    log: LogConfig
    accounts: dict[str, Account]
    providers: dict[str, ProviderSettings]
    routes: tuple[Route, ...]
    inbound: tuple[InboundRoute, ...] = ()
    admin: AdminConfig = AdminConfig()


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Reader:
    """Typed access to one table, with errors that name the file and the dotted key."""

    def __init__(self, source: str, table: dict[str, Any], prefix: str) -> None:
        self.source, self.table, self.prefix = source, table, prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, expected: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), expected)

    def get(
        self, name: str, kind: type | tuple[type, ...], default: Any, what: str, secret: bool = False
    ) -> Any:
        self.used.add(name)
        if name not in self.table:
            return default
        value = self.table[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        bad_bool = isinstance(value, bool) and kind is not bool
        if bad_bool or not isinstance(value, kind):
            shown = "a hidden value" if secret else repr(value)
            raise self.error(name, f"{what}, got {shown}")
        if isinstance(value, str):
            value = _interpolate(self, name, value)
        return value

    def positive(self, name: str, kind: type, default: Any, what: str) -> Any:
        value = self.get(name, kind, default, what)
        if value <= 0:
            raise self.error(name, f"{what} greater than 0, got {value!r}")
        return value

    def non_negative(self, name: str, kind: type, default: Any, what: str) -> Any:
        value = self.get(name, kind, default, what)
        if value < 0:
            raise self.error(name, f"{what} of 0 or more, got {value!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default, "one of " + ", ".join(map(repr, choices)))
        if value not in choices:
            raise self.error(name, "one of " + ", ".join(map(repr, choices)) + f", got {value!r}")
        return value

    def table_of(self, name: str) -> dict[str, Any]:
        return self.get(name, dict, {}, "a table")

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.error(unknown[0], "no such key here (known: " + ", ".join(sorted(self.used)) + ")")


def _interpolate(reader: _Reader, name: str, value: str) -> str:
    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        if var not in os.environ:
            raise reader.error(name, f"environment variable {var} to be set")
        return os.environ[var]

    return _ENV.sub(sub, value)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and check a config file; raises ConfigError."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(source, "(file)", f"a readable file ({e.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(source, "(syntax)", f"valid TOML: {e}") from None
    return parse(data, source)


def parse(data: dict[str, Any], source: str = "<config>") -> Config:
    top = _Reader(source, data, "")
    server = _server(_Reader(source, top.table_of("server"), "server"))
    http = _http(_Reader(source, top.table_of("http"), "http"))
    store = _store(_Reader(source, top.table_of("store"), "store"))
    receipts = _receipts(_Reader(source, top.table_of("receipts"), "receipts"))
    dispatch = _dispatch(_Reader(source, top.table_of("dispatch"), "dispatch"))
    log = _log(_Reader(source, top.table_of("log"), "log"))
    accounts = _accounts(source, top.table_of("accounts"))
    providers = _providers(source, top.table_of("providers"))
    routes = _routes(source, top.get("routes", list, [], "a list of [[routes]] tables"), providers, accounts)
    inbound = _inbound(
        source, top.get("inbound", list, [], "a list of [[inbound]] tables"), providers, accounts
    )
    admin = _admin(_Reader(source, top.table_of("admin"), "admin"))
    top.finish()
    return Config(
        source, server, http, store, receipts, dispatch, log, accounts, providers, routes, inbound, admin
    )


def _server(r: _Reader) -> ServerConfig:
    d = ServerConfig()
    cfg = ServerConfig(
        host=r.get("host", str, d.host, "a host address"),
        port=_port(r, "port", d.port),
        max_pdu_length=r.positive("max_pdu_length", int, d.max_pdu_length, "an integer (octets)"),
        session_init_timeout=r.positive("session_init_timeout", float, d.session_init_timeout, "seconds"),
        enquire_link_interval=r.positive("enquire_link_interval", float, d.enquire_link_interval, "seconds"),
        inactivity_timeout=r.positive("inactivity_timeout", float, d.inactivity_timeout, "seconds"),
        response_timeout=r.positive("response_timeout", float, d.response_timeout, "seconds"),
        window=r.positive("window", int, d.window, "an integer"),
        tls_port=_port(r, "tls_port", 0) if "tls_port" in r.table else None,
        tls_cert=r.get("tls_cert", str, d.tls_cert, "a PEM certificate file path"),
        tls_key=r.get("tls_key", str, d.tls_key, "a PEM private key file path"),
        bind_fail_delay=r.non_negative("bind_fail_delay", float, d.bind_fail_delay, "seconds"),
        bind_fail_delay_max=r.non_negative("bind_fail_delay_max", float, d.bind_fail_delay_max, "seconds"),
        bind_lockout_after=r.non_negative("bind_lockout_after", int, d.bind_lockout_after, "an integer"),
        bind_lockout_seconds=r.non_negative("bind_lockout_seconds", float, d.bind_lockout_seconds, "seconds"),
        max_connections=r.non_negative("max_connections", int, d.max_connections, "an integer"),
        max_unbound=r.non_negative("max_unbound", int, d.max_unbound, "an integer"),
        max_unbound_per_ip=r.non_negative("max_unbound_per_ip", int, d.max_unbound_per_ip, "an integer"),
    )
    if cfg.tls_port is not None:
        for name in ("tls_cert", "tls_key"):
            if not getattr(cfg, name):
                raise r.error(name, "a PEM file path (required with tls_port)")
            if not Path(getattr(cfg, name)).is_file():
                raise r.error(name, f"a readable PEM file, got {getattr(cfg, name)!r}")
    if cfg.max_pdu_length < 1024:
        raise r.error("max_pdu_length", f"at least 1024 octets, got {cfg.max_pdu_length}")
    r.finish()
    return cfg


def _port(r: _Reader, name: str, default: int) -> int:
    value = r.get(name, int, default, "a TCP port (0-65535)")
    if not 0 <= value <= 65535:
        raise r.error(name, f"a TCP port (0-65535), got {value}")
    return value


def _http(r: _Reader) -> HttpConfig:
    cfg = HttpConfig(
        host=r.get("host", str, HttpConfig.host, "a host address"),
        port=_port(r, "port", HttpConfig.port),
        worker_ports_from=_port(r, "worker_ports_from", 0) if "worker_ports_from" in r.table else None,
    )
    if cfg.worker_ports_from == 0:
        raise r.error("worker_ports_from", "a fixed TCP port (1-65535): worker i listens on it + i, got 0")
    r.finish()
    return cfg


ADMIN_TOKEN_MIN = 16


def _admin(r: _Reader) -> AdminConfig:
    token = r.get("token", str, "", "a string (the Bearer token of the admin API)", secret=True)
    allow = tuple(r.get("allow", list, [], "a list of networks (CIDR)"))
    for net in allow:
        try:
            ipaddress.ip_network(net, strict=False)
        except (TypeError, ValueError):
            raise r.error("allow", f"networks such as 10.0.0.0/8 or 127.0.0.1, got {net!r}") from None
    cfg = AdminConfig(
        token=token,
        allow=allow,
        host=r.get("host", str, AdminConfig.host, "a host address"),
        port=_port(r, "port", 0) if "port" in r.table else None,
    )
    if r.table and not token:
        raise r.error("token", "a token (the admin API is off without one; remove [admin] to keep it off)")
    if token and (len(token) < ADMIN_TOKEN_MIN or not token.isprintable()):
        raise r.error("token", f"at least {ADMIN_TOKEN_MIN} printable characters, got a hidden value")
    r.finish()
    return cfg


_SQLITE_ONLY = ("path", "durability")
_REDIS_ONLY = ("url", "key_prefix", "claim_after", "node", "wait_replicas", "wait_timeout", "cluster",
               "partitions")  # fmt: skip
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CLAIM_AFTER_MIN = 3.0  # heartbeats go out every second; a few must be missed before a claim


def _store(r: _Reader) -> StoreConfig:
    d = StoreConfig()
    kind = r.choice("type", ("sqlite", "redis"), d.type)
    for name in _REDIS_ONLY if kind == "sqlite" else _SQLITE_ONLY:
        if name in r.table:
            raise r.error(name, f'no {name} with type = "{kind}" (it belongs to the other store type)')
    cfg = StoreConfig(
        type=kind,
        path=r.get("path", str, d.path, "a file path"),
        durability=r.choice("durability", ("normal", "fsync"), d.durability),
        max_batch=r.positive("max_batch", int, d.max_batch, "an integer"),
        keep_final=r.positive("keep_final", float, d.keep_final, "seconds"),
        purge_batch=r.positive("purge_batch", int, d.purge_batch, "an integer"),
        purge_every=r.positive("purge_every", float, d.purge_every, "seconds"),
        url=r.get("url", str, "", "a redis:// URL", secret=True),
        key_prefix=r.get("key_prefix", str, d.key_prefix, "a string"),
        claim_after=r.positive("claim_after", float, d.claim_after, "seconds"),
        node=r.get("node", str, d.node, "a name"),
        wait_replicas=r.get("wait_replicas", int, d.wait_replicas, "a number of replicas (0: no WAIT)"),
        wait_timeout=r.positive("wait_timeout", float, d.wait_timeout, "seconds"),
        cluster=r.get("cluster", bool, d.cluster, "true or false"),
        partitions=r.positive("partitions", int, d.partitions, "a number of partitions"),
    )
    if kind == "redis" and urlsplit(cfg.url).scheme.endswith("+cluster"):
        cfg = replace(cfg, cluster=True)
    if kind == "redis":
        _check_redis(r, cfg)
    r.finish()
    return cfg


def _check_redis(r: _Reader, cfg: StoreConfig) -> None:
    url = urlsplit(cfg.url)
    shown = "a URL with a password (hidden)" if url.password else repr(cfg.url)
    if url.scheme not in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        raise r.error(
            "url",
            "redis://host:port/db, rediss://…, redis+cluster://host:port or unix:///path (required), "
            f"got {shown}",
        )
    try:
        port = url.port
    except ValueError:
        raise r.error("url", f"a port number 1-65535, got {shown}") from None
    if url.scheme != "unix" and not url.hostname:
        raise r.error("url", f"a host, as in redis://127.0.0.1:6379/0, got {shown}")
    db = url.path.strip("/")
    if url.scheme != "unix" and db and not db.isdigit():
        raise r.error("url", f"a database number after the port (/0), got {shown}")
    del port
    if not cfg.key_prefix or not cfg.key_prefix.isprintable() or " " in cfg.key_prefix:
        raise r.error("key_prefix", f"printable characters without spaces, got {cfg.key_prefix!r}")
    if cfg.claim_after < CLAIM_AFTER_MIN:
        raise r.error("claim_after", f"at least {CLAIM_AFTER_MIN:g} seconds, got {cfg.claim_after:g}")
    if cfg.node and not _NAME.fullmatch(cfg.node):
        raise r.error("node", f"1-64 letters, digits, '.', '_' or '-', got {cfg.node!r}")
    if cfg.wait_replicas < 0:
        raise r.error("wait_replicas", f"0 or more, got {cfg.wait_replicas}")
    if cfg.cluster:
        if url.scheme == "unix":
            raise r.error("url", "a host and port of one cluster node with cluster = true, got a unix socket")
        if db and db != "0":
            raise r.error("url", f"database 0 on a Redis Cluster (it has no others), got {shown}")
        if "{" in cfg.key_prefix or "}" in cfg.key_prefix:
            raise r.error(
                "key_prefix",
                f"no braces on a Redis Cluster (the store adds hash tags), got {cfg.key_prefix!r}",
            )
        if not 1 < cfg.partitions <= 1024:
            raise r.error("partitions", f"2 to 1024 on a Redis Cluster, got {cfg.partitions}")


def _receipts(r: _Reader) -> ReceiptConfig:
    d = ReceiptConfig()
    cfg = ReceiptConfig(
        max_age=r.positive("max_age", float, d.max_age, "seconds"),
        max_per_account=r.positive("max_per_account", int, d.max_per_account, "an integer"),
        retry_initial=r.positive("retry_initial", float, d.retry_initial, "seconds"),
        retry_max=r.positive("retry_max", float, d.retry_max, "seconds"),
    )
    r.finish()
    return cfg


def _dispatch(r: _Reader) -> DispatchConfig:
    d = DispatchConfig()
    cfg = DispatchConfig(
        max_attempts=r.positive("max_attempts", int, d.max_attempts, "an integer"),
        retry_initial=r.positive("retry_initial", float, d.retry_initial, "seconds"),
        retry_max=r.positive("retry_max", float, d.retry_max, "seconds"),
        status_horizon=r.positive("status_horizon", float, d.status_horizon, "seconds"),
        breaker_threshold=r.positive("breaker_threshold", int, d.breaker_threshold, "an integer"),
        breaker_cooldown=r.positive("breaker_cooldown", float, d.breaker_cooldown, "seconds"),
    )
    r.finish()
    return cfg


def _log(r: _Reader) -> LogConfig:
    cfg = LogConfig(
        level=r.choice("level", ("debug", "info", "warning", "error"), LogConfig.level),
        format=r.choice("format", ("kv", "json"), LogConfig.format),
    )
    r.finish()
    return cfg


def _accounts(source: str, table: dict[str, Any]) -> dict[str, Account]:
    if not table:
        raise ConfigError(source, "accounts", "at least one [accounts.<system_id>] table")
    accounts = {}
    for system_id, body in table.items():
        prefix = f"accounts.{system_id}"
        if not isinstance(body, dict):
            raise ConfigError(source, prefix, "a table")
        if not 1 <= len(system_id) <= 15 or not system_id.isprintable():
            raise ConfigError(source, prefix, "a system_id of 1 to 15 printable characters")
        r = _Reader(source, body, prefix)
        if "password" not in body:
            raise r.error("password", "a password (plaintext, ${ENV} or a hash from `smppgw hash-password`)")
        password = r.get("password", str, "", "a string", secret=True)
        if not password.startswith("pbkdf2_sha256$") and not 1 <= len(password) <= 8:
            raise r.error("password", "1 to 8 characters (SMPP limit) or a hash from `smppgw hash-password`")
        fmt = r.choice("message_id_format", ("decimal", "hex"), "decimal")
        length = r.get("message_id_length", int, 10 if fmt == "decimal" else 16, "an integer from 8 to 64")
        if not 8 <= length <= 64:
            raise r.error("message_id_length", f"an integer from 8 to 64, got {length}")
        accounts[system_id] = Account(
            system_id=system_id,
            password=password,
            max_binds=r.positive("max_binds", int, 10, "an integer"),
            message_id_format=fmt,
            message_id_length=length,
            ack=r.choice("ack", ("stored", "provider"), "stored"),
            strict_senders=r.get("strict_senders", bool, False, "true or false"),
            dc0_charset=r.choice("dc0_charset", CHARSETS, "gsm"),
            dc1_charset=r.choice("dc1_charset", CHARSETS, "ascii"),
            long_mo=r.choice("long_mo", ("udh", "sar", "payload"), "udh"),
            throughput=_per_second(r, "throughput"),
            burst=r.get("burst", int, 0, "an integer >= 0 (0: one second's worth)"),
            reassembly_timeout=r.positive("reassembly_timeout", float, 60.0, "seconds"),
            intermediate_esm_class=r.get("intermediate_esm_class", int, 0x04, "4 or 32 (0x04 or 0x20)"),
        )
        made = accounts[system_id]
        if made.burst < 0:
            raise r.error("burst", f"an integer >= 0 (0: one second's worth), got {made.burst}")
        if made.intermediate_esm_class not in (0x04, 0x20):
            esm = made.intermediate_esm_class
            raise r.error("intermediate_esm_class", f"4 or 32 (0x04 or 0x20), got {esm}")
        r.finish()
    return accounts


def _providers(source: str, table: dict[str, Any]) -> dict[str, ProviderSettings]:
    if not table:
        raise ConfigError(source, "providers", "at least one [providers.<name>] table")
    out = {}
    for name, body in table.items():
        prefix = f"providers.{name}"
        if not isinstance(body, dict):
            raise ConfigError(source, prefix, "a table")
        r = _Reader(source, body, prefix)
        ptype = r.choice("type", tuple(PROVIDER_TYPES), "")
        url = r.get("url", str, "", "a base URL (http:// or https://)")
        if ptype != "simulator" and not re.match(r"https?://", url):
            raise r.error("url", f"a base URL starting with http:// or https://, got {url!r}")
        d = ProviderSettings(name, ptype, url)
        common = {
            "timeout": r.positive("timeout", float, d.timeout, "seconds"),
            "webhook_secret": r.get("webhook_secret", str, "", "a string", secret=True),
            "webhook_allow": tuple(r.get("webhook_allow", list, [], "a list of networks (CIDR)")),
            "balance_interval": _seconds_or_zero(r, "balance_interval", d.balance_interval),
            "senders_interval": _seconds_or_zero(r, "senders_interval", d.senders_interval),
            "inbound_interval": _seconds_or_zero(r, "inbound_interval", d.inbound_interval),
            "poll_first": r.positive("poll_first", float, d.poll_first, "seconds"),
            "poll_max_gap": r.positive("poll_max_gap", float, d.poll_max_gap, "seconds"),
            "prices": _price_table(r),
            "networks": _network_table(r),
            "prices_interval": _seconds_or_zero(r, "prices_interval", d.prices_interval),
        }
        for net in common["webhook_allow"]:
            try:
                ipaddress.ip_network(net, strict=False)
            except (TypeError, ValueError):
                raise r.error(
                    "webhook_allow", f"networks such as 10.0.0.0/8 or 127.0.0.1, got {net!r}"
                ) from None
        options = {}
        for key, value in body.items():
            if key in r.used:
                continue
            options[key] = _interpolate(r, key, value) if isinstance(value, str) else value
        out[name] = ProviderSettings(name=name, type=ptype, url=url, options=options, source=source, **common)
    return out


def _per_second(r: _Reader, name: str) -> float:
    value = r.get(name, float, 0.0, "messages per second (0: no limit)")
    if value < 0:
        raise r.error(name, f"messages per second >= 0 (0: no limit), got {value}")
    return value


def _price_table(r: _Reader) -> dict[str, float]:
    table = r.get("prices", dict, {}, "a table of destination prefix = price")
    for prefix, price in table.items():
        if not prefix.isdigit() or isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
            raise r.error("prices", f'digits = a price >= 0 (e.g. "380" = 0.45), got {prefix!r} = {price!r}')
    return {k: float(v) for k, v in table.items()}


def _network_table(r: _Reader) -> dict[str, str]:
    table = r.get("networks", dict, {}, 'a table of destination prefix = "mcc-mnc"')
    for prefix, net in table.items():
        if not prefix.isdigit() or not isinstance(net, str) or not re.fullmatch(r"\d{3}-\d{2,3}", net):
            expected = f'digits = "mcc-mnc" (e.g. "38050" = "255-01"), got {prefix!r} = {net!r}'
            raise r.error("networks", expected)
    return dict(table)


def _seconds_or_zero(r: _Reader, name: str, default: float) -> float:
    value = r.get(name, float, default, "seconds (0 turns it off)")
    if value < 0:
        raise r.error(name, f"seconds >= 0 (0 turns it off), got {value}")
    return value


def _inbound(
    source: str, items: list[Any], providers: dict[str, ProviderSettings], accounts: dict[str, Account]
) -> tuple[InboundRoute, ...]:
    out = []
    for i, body in enumerate(items):
        prefix = f"inbound[{i}]"
        if not isinstance(body, dict):
            raise ConfigError(source, prefix, "a table")
        r = _Reader(source, body, prefix)
        account = r.get("account", str, "", "a system_id")
        if account not in accounts:
            raise r.error("account", f"names of [accounts.*] tables, got {account!r}")
        numbers = tuple(str(n).lstrip("+") for n in r.get("numbers", list, [], "a list of numbers or '*'"))
        if not numbers:
            raise r.error("numbers", "a non-empty list of numbers (our numbers, SIMs, short codes) or '*'")
        names = tuple(r.get("providers", list, [], "a list of provider names"))
        for n in names:
            if n not in providers:
                raise r.error("providers", f"names of [providers.*] tables, got {n!r}")
        out.append(InboundRoute(account, numbers, names))
        r.finish()
    return tuple(out)


def _routes(
    source: str, items: list[Any], providers: dict[str, ProviderSettings], accounts: dict[str, Account]
) -> tuple[Route, ...]:
    routes = []
    for i, body in enumerate(items):
        prefix = f"routes[{i}]"
        if not isinstance(body, dict):
            raise ConfigError(source, prefix, "a table")
        r = _Reader(source, body, prefix)
        names = r.get("providers", list, None, "a list of provider names")
        if names is None:
            one = r.get("provider", str, None, "a provider name")
            names = [one] if one else []
        else:
            r.used.add("provider")
        if not names:
            raise r.error("providers", "a non-empty list of provider names")
        for n in names:
            if n not in providers:
                raise r.error(
                    "providers", f"names of [providers.*] tables ({', '.join(providers)}), got {n!r}"
                )
        accts = tuple(r.get("accounts", list, [], "a list of system_ids"))
        for a in accts:
            if a not in accounts:
                raise r.error("accounts", f"names of [accounts.*] tables, got {a!r}")
        prefixes = tuple(
            str(p) for p in r.get("prefixes", list, [], "a list of destination prefixes (digits)")
        )
        for p in prefixes:
            if not p.isdigit():
                raise r.error("prefixes", f"digits only, got {p!r}")
        sources = tuple(str(s) for s in r.get("sources", list, [], "a list of source addresses"))
        weights = tuple(r.get("weights", list, [], "a list of weights, one per provider"))
        if weights and (
            len(weights) != len(names)
            or any(isinstance(w, bool) or not isinstance(w, int | float) or w < 0 for w in weights)
            or not sum(weights)
        ):
            raise r.error("weights", f"{len(names)} numbers >= 0, one per provider, not all 0")
        strategies = ("failover", "weighted", "least-cost")
        strategy = r.choice("strategy", strategies, "weighted" if weights else "failover")
        if strategy == "weighted" and not weights:
            raise r.error("weights", 'one weight per provider with strategy = "weighted"')
        shares = tuple(float(w) for w in weights)
        routes.append(Route(tuple(names), accts, prefixes, sources, shares, strategy == "least-cost"))
        r.finish()
    if not routes:
        # No routes: everything goes to the first provider, which is what a one-provider file means.
        routes.append(Route((next(iter(providers)),)))
    return tuple(routes)
