"""Small helpers the tests share (admin user, bearer token, reading back events)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy.engine import Engine

from cohortsync.clock import SystemClock
from cohortsync.domain.accounts import Role
from cohortsync.services.accounts import AccountService


def admin_token(engine: Engine, project_id: int, email: str = "admin@example.com") -> str:
    """Create an admin of the project and return a bearer token for them."""
    people = AccountService(engine, SystemClock())
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
