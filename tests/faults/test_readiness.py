"""Readiness says the database cannot answer with a 503 and Retry-After, not a 500."""

from __future__ import annotations

from pydantic import SecretStr

from cohortsync.app import create_app
from cohortsync.settings import Settings
from cohortsync.storage.database import create_engine
from tests.conftest import TEST_KEY, free_port
from tests.web.conftest import in_process


def test_readiness_is_503_while_the_database_is_unreachable() -> None:
    # a PostgreSQL URL on a port nobody listens on: every connection is refused
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    settings = Settings(database_url=url, secret_key=SecretStr(TEST_KEY), scheduler=False)
    engine = create_engine(url)
    try:
        reply = in_process(create_app(settings, engine=engine), "GET", "/readyz")
    finally:
        engine.dispose()
    assert reply.status_code == 503, reply.text
    assert reply.headers["retry-after"].isdigit()
    assert reply.json()["error"]["code"].startswith("database")
