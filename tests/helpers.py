"""Small helpers the tests share (admin user, bearer token, reading back events)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import orjson
from sqlalchemy.engine import Engine

from cohortsync.clock import Clock, SystemClock
from cohortsync.domain.accounts import Role, SignInLimits
from cohortsync.services.accounts import DEFAULT_LOGIN_LIFETIME, AccountService

# scrypt at N=2^10 (1 MiB, ~2 ms) instead of the default 2^17 (128 MiB, ~0.4 s): many tests
# create people. tests/conftest.py sets COHORTSYNC_PASSWORD_HASH_COST to it for every Settings;
# tests/security/test_sign_in.py proves the default and the upgrade of older hashes.
TEST_PASSWORD_COST = 10


def accounts(
    engine: Engine,
    clock: Clock | None = None,
    login_lifetime: timedelta = DEFAULT_LOGIN_LIFETIME,
    *,
    limits: SignInLimits | None = None,
    token_days: int = 90,
) -> AccountService:
    """The accounts service as the tests build it: passwords hashed at the test cost."""
    return AccountService(
        engine,
        clock or SystemClock(),
        login_lifetime,
        password_cost=TEST_PASSWORD_COST,
        limits=limits,
        token_days=token_days,
    )


def admin_token(engine: Engine, project_id: int, email: str = "admin@example.com") -> str:
    """Create an admin of the project and return a bearer token for them."""
    people = accounts(engine)
    people.create_user(email, "correct horse battery", Role.ADMIN, project_id)
    return people.create_token(email)


def exported(
    client: httpx.Client, token: str, project_id: int, **params: str
) -> list[dict[str, Any]]:
    """All events of the project through the NDJSON export endpoint."""
    query = {"from": "1971-01-01", "to": "2030-12-31", **params}
    response = client.get(
        f"/api/v1/projects/{project_id}/events",
        params=query,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]


def profile(client: httpx.Client, token: str, project_id: int, distinct_id: str) -> httpx.Response:
    """GET a profile through the API."""
    return client.get(
        f"/api/v1/projects/{project_id}/profiles/{distinct_id}",
        headers={"Authorization": f"Bearer {token}"},
    )


T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on a loop of its own thread (Playwright's sync API may hold
    this thread's loop)."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()
