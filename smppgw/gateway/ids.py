"""Message ids: one opaque string per message, the same in submit_sm_resp, the receipt text
and receipted_message_id. Numbers come from one counter whose high-water mark is stored with
every batch, so ids are not reused after a restart; the string form is per account
(decimal or hex, bounded length) because legacy ESMEs keep ids in narrow columns.
"""

from __future__ import annotations


class IdIssuer:
    def __init__(self, next_number: int) -> None:
        self.next_number = next_number

    @property
    def high(self) -> int:
        """The highest number issued so far."""
        return self.next_number - 1

    def issue(self, fmt: str = "decimal", length: int = 10) -> str:
        n = self.next_number
        self.next_number = n + 1
        return format_id(n, fmt, length)


def format_id(n: int, fmt: str, length: int) -> str:
    if fmt == "hex":
        return format(n % (16**length), f"0{length}x")
    return str(n % (10**length)).zfill(length)
