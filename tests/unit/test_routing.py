"""Routes: conditions, longest prefix, weighted split, least cost (static and published prices)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from smppgw.config import parse
from smppgw.gateway.prices import PriceBook
from smppgw.gateway.router import NoRoute, Router


def config(routes, providers=None):
    providers = providers or {n: {"type": "simulator"} for n in ("a", "b", "c")}
    return parse(
        {
            "accounts": {"x": {"password": "p"}, "y": {"password": "p"}},
            "providers": providers,
            "routes": routes,
        }
    )


def router(routes, providers=None):
    c = config(routes, providers)
    return Router(c.routes, PriceBook(c.providers)), c


def test_longest_matching_prefix_wins_and_the_plain_route_is_the_default():
    r, _ = router(
        [
            {"providers": ["a"]},
            {"prefixes": ["380"], "providers": ["b"]},
            {"prefixes": ["38067"], "providers": ["c"]},
        ]
    )
    assert r.route("x", "380671234567", "S") == ("c",)
    assert r.route("x", "380501234567", "S") == ("b",)
    assert r.route("x", "441234567890", "S") == ("a",)


def test_account_and_source_conditions_narrow_a_route():
    r, _ = router([{"accounts": ["y"], "providers": ["b"]}, {"sources": ["BANK"], "providers": ["c"]}])
    assert r.route("y", "380", "S") == ("b",)
    assert r.route("x", "380", "BANK") == ("c",)
    with pytest.raises(NoRoute):
        r.route("x", "380", "OTHER")


def test_cached_matches_are_the_matches_of_a_walk_over_every_route():
    r, _ = router(
        [
            {"providers": ["a"]},
            {"prefixes": ["3", "380"], "providers": ["b"]},
            {"prefixes": ["38067", "4"], "accounts": ["y"], "providers": ["c"]},
            {"sources": ["BANK"], "prefixes": ["38"], "providers": ["c"]},
        ]
    )
    rng = random.Random(7)
    for _ in range(2000):
        dest = "".join(rng.choice("3804567") for _ in range(rng.randint(1, 12)))
        account, source = rng.choice("xy"), rng.choice(["S", "BANK"])
        assert r.route(account, dest, source) == r._walk(account, dest, source).providers


def test_weighted_split_follows_the_weights_and_keeps_the_others_as_failover():
    r, _ = router([{"providers": ["a", "b"], "weights": [3, 1]}])
    random.seed(7)
    chains = [r.route("x", "380", "S") for _ in range(4000)]
    firsts = Counter(c[0] for c in chains)
    assert 2800 < firsts["a"] < 3200
    assert all(sorted(c) == ["a", "b"] for c in chains)


def test_least_cost_orders_by_static_prices_and_unknown_prices_go_last():
    providers = {
        "a": {"type": "simulator", "prices": {"380": 0.5, "38067": 0.3}},
        "b": {"type": "simulator", "prices": {"380": 0.4}},
        "c": {"type": "simulator"},
    }
    r, _ = router([{"providers": ["c", "a", "b"], "strategy": "least-cost"}], providers)
    assert r.route("x", "380501234567", "S") == ("b", "a", "c")
    assert r.route("x", "380671234567", "S") == ("a", "b", "c")


def test_least_cost_uses_published_network_prices():
    providers = {
        "fly": {"type": "simulator", "networks": {"38050": "255-01", "38067": "255-03"}},
        "flat": {"type": "simulator", "prices": {"380": 0.4775}},
    }
    r, c = router([{"providers": ["flat", "fly"], "strategy": "least-cost"}], providers)
    assert r.route("x", "380501234567", "S") == ("flat", "fly")  # nothing published yet
    r.prices.update("fly", {"255-01": 0.478, "255-03": 0.477})
    assert r.route("x", "380501234567", "S") == ("flat", "fly")  # 0.4775 < 0.478
    assert r.route("x", "380671234567", "S") == ("fly", "flat")  # 0.477 < 0.4775


def test_route_errors_name_the_key():
    from smppgw.config import ConfigError

    with pytest.raises(ConfigError) as e:
        config([{"providers": ["a", "b"], "weights": [1]}])
    assert e.value.key == "routes[0].weights"
    with pytest.raises(ConfigError) as e:
        config([{"providers": ["a"], "strategy": "cheapest"}])
    assert e.value.key == "routes[0].strategy"
    with pytest.raises(ConfigError) as e:
        config([{"providers": ["a"]}], {"a": {"type": "simulator", "networks": {"380": "ukraine"}}})
    assert e.value.key == "providers.a.networks"


@pytest.mark.parametrize(
    "charset, text, dc, data",
    [
        ("gsm", "café {x}", 0, b"caf\x05 \x1b(x\x1b)"),
        ("latin-1", "café", 0, "café".encode("latin-1")),
        ("ascii", "café", 8, "café".encode("utf-16-be")),
        ("gsm", "Привіт", 8, "Привіт".encode("utf-16-be")),
    ],
)
def test_mo_text_is_written_in_the_charset_the_account_reads_data_coding_0_as(charset, text, dc, data):
    from smppgw.gateway.receipts import build_mo
    from smppgw.providers.base import Inbound

    record = build_mo("k", "x", "1", Inbound("380501234567", "1234", text), 0.0, charset)
    assert (record.data_coding, record.short_message) == (dc, data)
