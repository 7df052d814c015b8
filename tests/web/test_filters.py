"""How pages write URLs and intervals, and when the browser tests may be skipped (no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cohortsync.web.pages import TEMPLATES, public_url
from tests.web.conftest import REQUIRE_BROWSER, require_chromium


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


def test_a_missing_chromium_skips_the_browser_tests_unless_they_are_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "chromium"
    monkeypatch.delenv(REQUIRE_BROWSER, raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_chromium(missing)
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match="COHORTSYNC_REQUIRE_BROWSER"):
        require_chromium(missing)
    missing.touch()
    require_chromium(missing)  # present: nothing to say
