"""ESME passwords: plaintext in the config, or a PBKDF2 hash from `smppgw hash-password`.

Format: pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>. Checking a hash costs ~0.1 s, so a
password that matched once is remembered as its HMAC under a per-process key: rebinding
ESMEs (and a thousand sessions of one account) do not each pay for PBKDF2 on the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import os

ITERATIONS = 200_000
_PROCESS_KEY = os.urandom(32)


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def is_hash(stored: str) -> bool:
    return stored.startswith("pbkdf2_sha256$")


class PasswordChecker:
    def __init__(self) -> None:
        self._known: dict[str, bytes] = {}  # stored value -> HMAC of the password that matched it

    def check(self, stored: str, given: str) -> bool:
        mac = hmac.new(_PROCESS_KEY, given.encode(), hashlib.sha256).digest()
        if not is_hash(stored):
            return hmac.compare_digest(mac, hmac.new(_PROCESS_KEY, stored.encode(), hashlib.sha256).digest())
        known = self._known.get(stored)
        if known is not None:
            return hmac.compare_digest(known, mac)
        try:
            _, iterations, salt, digest = stored.split("$")
            ok = hmac.compare_digest(
                hashlib.pbkdf2_hmac("sha256", given.encode(), bytes.fromhex(salt), int(iterations)),
                bytes.fromhex(digest),
            )
        except ValueError:
            return False
        if ok:
            self._known[stored] = mac
        return ok
