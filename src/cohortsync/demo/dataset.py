"""A realistic product dataset: sign-ups, sessions, purchases, plans, emails, anonymous visitors
and identities merged on login. Deterministic for a seed, so seeding twice stores nothing twice.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DAY_MS = 86_400_000
EVENT_MIX = (
    ("App Open", 35),
    ("Page View", 30),
    ("Search", 10),
    ("Add to Cart", 10),
    ("Purchase", 8),
    ("Share", 7),
)
PLANS = (("free", 60), ("pro", 30), ("enterprise", 10))
COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR", "JP", "ES", "CA", "AU")
FIRST_NAMES = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Edsger", "Frances")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov")
PAGES = ("/", "/pricing", "/docs", "/blog", "/signup", "/cart", "/account")


@dataclass(frozen=True)
class DemoConfig:
    """Shape of the generated dataset."""

    users: int
    events_per_user: int = 10
    days: int = 90
    anonymous_share: float = 0.15
    merged_share: float = 0.3
    seed: int = 7
    batch_size: int = 2000
    first_user: int = 0  # generate users first_user .. first_user + users - 1 (for shards)


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([name for name, _ in table], weights=[w for _, w in table])[0]


def _profile(rng: random.Random, index: int, signup_ms: int) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    props: dict[str, Any] = {
        "$first_name": first,
        "$last_name": last,
        "$name": f"{first} {last}",
        "plan": _weighted(rng, PLANS),
        "country": rng.choice(COUNTRIES),
        "$created": datetime.fromtimestamp(signup_ms / 1000, UTC).isoformat(timespec="seconds"),
        "age": rng.randint(18, 80),
        "newsletter": rng.random() < 0.4,
    }
    if rng.random() < 0.9:
        props["$email"] = f"{first.lower()}.{last.lower()}.{index}@example.com"
    if rng.random() < 0.5:
        props["$phone"] = f"+1555{index:07d}"
    if rng.random() < 0.2:
        props["$iterable_user_id"] = f"it-{index}"
    if rng.random() < 0.2:
        props["$CleverTap_user_id"] = f"ct-{index}"
    return props


def _event_properties(rng: random.Random, name: str) -> dict[str, Any]:
    if name == "Purchase":
        return {
            "amount": round(rng.uniform(5, 200), 2),
            "currency": "USD",
            "items": rng.randint(1, 5),
        }
    if name == "Page View":
        return {"path": rng.choice(PAGES)}
    if name == "Search":
        return {"query_length": rng.randint(1, 40)}
    if name == "Add to Cart":
        return {"price": round(rng.uniform(5, 120), 2)}
    return {"platform": rng.choice(("ios", "android", "web"))}


def _user_events(
    rng: random.Random, config: DemoConfig, index: int, now_ms: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """("events"|"profiles", record) for one user."""
    signup_ms = now_ms - rng.randint(DAY_MS // 24, config.days * DAY_MS)
    device = f"dev-{index:x}-{rng.getrandbits(32):08x}"
    user = f"user-{index}"
    anonymous = rng.random() < config.anonymous_share
    merged = not anonymous and rng.random() < config.merged_share
    count = max(1, int(rng.expovariate(1 / config.events_per_user)))
    anonymous_events = count if anonymous else (rng.randint(1, 3) if merged else 0)
    if not anonymous:
        yield "profiles", {"$distinct_id": user, "$set": _profile(rng, index, signup_ms)}
    times = sorted(rng.randint(signup_ms, now_ms) for _ in range(count))
    for k, at in enumerate(times):
        props: dict[str, Any] = {
            "time": at,
            "$insert_id": f"demo-{index:x}-{k:x}",
            "$device_id": device,
        }
        if k < anonymous_events:
            props["distinct_id"] = f"$device:{device}"
            name = "Page View" if k == 0 else _weighted(rng, EVENT_MIX)
        else:
            props["distinct_id"] = user
            props["$user_id"] = user
            name = "Sign Up" if k == anonymous_events else _weighted(rng, EVENT_MIX)
        props.update(_event_properties(rng, name))
        yield "events", {"event": name, "properties": props}


def generate(config: DemoConfig, now_ms: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Batches of ("events", records) and ("profiles", records), at most batch_size each."""
    rng = random.Random(config.seed * 1_000_003 + config.first_user)
    pending: dict[str, list[dict[str, Any]]] = {"events": [], "profiles": []}
    for index in range(config.first_user, config.first_user + config.users):
        for kind, record in _user_events(rng, config, index, now_ms):
            batch = pending[kind]
            batch.append(record)
            if len(batch) >= config.batch_size:
                yield kind, batch
                pending[kind] = []
    for kind, batch in pending.items():
        if batch:
            yield kind, batch
