"""The dedup hash stored with each event stays the same for the same parts across versions:
events stored before and after a change of how it is computed must still dedup together."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from cohortsync.domain.events import dedup_hash

texts = st.text(st.characters(exclude_categories=["Cs"]))


def test_a_known_event_keeps_its_hash() -> None:
    assert dedup_hash("Purchase", "user-1", "abc-123") == -878_471_620_588_015_674


@given(texts, texts, texts)
def test_the_hash_is_the_first_8_bytes_of_blake2b_of_the_parts(
    name: str, distinct_id: str, insert_id: str
) -> None:
    parts = f"{name}\x00{distinct_id}\x00{insert_id}".encode()
    expected = int.from_bytes(hashlib.blake2b(parts, digest_size=8).digest(), "big", signed=True)
    assert dedup_hash(name, distinct_id, insert_id) == expected
