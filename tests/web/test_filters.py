"""How pages write URLs and intervals (no browser)."""

from __future__ import annotations

import pytest

from cohortsync.web.pages import TEMPLATES, public_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pa55@hooks.example/in?token=t0k#frag", "https://hooks.example/in"),
        ("http://alice@hooks.example:8443/a/b", "http://hooks.example:8443/a/b"),
        ("https://[::1]:9000/h?k=v", "https://[::1]:9000/h"),
        ("https://hooks.example/plain", "https://hooks.example/plain"),
        ("http://x:99999999/", "(not a valid URL)"),
    ],
)
def test_a_url_is_shown_without_credentials_or_query(url: str, shown: str) -> None:
    assert public_url(url) == shown


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (900, "every 15 minutes"),
        (1800, "every 30 minutes"),
        (3600, "every hour"),
        (7200, "every 2 hours"),
    ],
)
def test_one_way_of_saying_an_interval(seconds: int, said: str) -> None:
    every = TEMPLATES.env.filters["every"]
    assert every(seconds) == said
    assert every(float(seconds)) == said
