"""Schemathesis over the service's OpenAPI document: every ``/api/v1`` operation, called as the
project's admin and as a member against a live server on loopback (SQLite and PostgreSQL),
answers without a server error and, where it documents a response, in its documented shape.

The server holds real objects first (profiles, a cohort, an integration connected to a
loopback emulator, a sync with a run), and generated ids are aimed at them, so most calls reach
the code behind the lookup; ids at the edges (0, negative, past 2⁶³) are sent as generated.
Writes that destroy (DELETE, a changed integration, a new export) get objects made for them.

Nothing generated may leave the machine: every integration a case creates or changes is
pointed at the loopback emulator, and name lookups other than loopback fail for the duration
(:func:`loopback_only`), so a case that would still reach out fails instead.

``make test`` runs a few derandomized examples per operation; ``make fuzz`` runs
``COHORTSYNC_FUZZ_SCALE`` times as many and adds Schemathesis' coverage phase.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from cohortsync.app import create_app
from cohortsync.settings import Settings
from tests.conftest import TEST_KEY
from tests.security.conftest import PERSON, SecurityWorld

SCALE = float(os.environ.get("COHORTSYNC_FUZZ_SCALE", "1"))
EXAMPLES = max(1, round(5 * SCALE))
ROLES = ("admin", "member")
ENGINES = frozenset({"sqlite", "postgresql"})
SEED = int(os.environ.get("COHORTSYNC_FUZZ_SEED", "15"))
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
INTEGRATIONS = "/api/v1/projects/{project_id}/integrations"


def _document() -> dict[str, Any]:
    """The OpenAPI document the app serves at /openapi.json (built without a database:
    ``test_the_served_document_is_the_one_tested`` holds the live server to it)."""
    settings = Settings(
        database_url="sqlite://", secret_key=SecretStr(TEST_KEY), ingest_processes=0
    )
    app = create_app(settings)
    document: dict[str, Any] = app.openapi()
    app.state.cohortsync.engine.dispose()
    return document


DOCUMENT = _document()
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "max-examples": EXAMPLES,
            "deterministic": True,
            "database": "none",
            "mode": "all",  # valid and invalid input alike
        },
        "phases": {"coverage": {"enabled": SCALE > 1}, "stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG).include(path_regex=r"^/api/v1/")


@dataclass(frozen=True)
class Bug:
    """A real bug the run finds, kept as a strict xfail where it shows (fixing it makes the
    case pass, and then its entry must go)."""

    what: str
    engines: frozenset[str] = ENGINES
    roles: frozenset[str] = frozenset(ROLES)


# Real bugs found and not yet fixed: operation label -> Bug (none now; ids past the databases'
# INTEGER were the last, refused as 400 since src/cohortsync/row_ids.py).
KNOWN_BUGS: dict[str, Bug] = {}

# Checks left out for an operation, each with why: operation label -> {check name: reason}.
SKIPPED_CHECKS: dict[str, dict[str, str]] = {}
CHECKS = {
    "not_a_server_error": not_a_server_error,
    "response_schema_conformance": response_schema_conformance,
}


@pytest.fixture(scope="module")
def loopback_only() -> Iterator[list[str]]:
    """Name lookups other than loopback fail (and are listed) while the module runs: a
    generated URL that slipped past :func:`aim` cannot reach, nor resolve, anything."""
    resolve = socket.getaddrinfo
    refused: list[str] = []

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK and not name.startswith("127."):
            refused.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: not on loopback (test fence)")
        return resolve(host, *args, **kwargs)

    socket.getaddrinfo = guarded
    yield refused
    socket.getaddrinfo = resolve


def _ordinary(value: Any) -> bool:
    """Whether a generated id is an ordinary one (not 0, negative, past 2⁶³ or not a number)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _aimed(value: Any, real: int) -> Any:
    """``real`` for an ordinary generated id; an edge value as generated."""
    return real if _ordinary(value) else value


def _loopback_endpoints(world: SecurityWorld, body: dict[str, Any], creating: bool) -> None:
    """Point whatever integration the body creates or changes at the loopback emulator."""
    settings = body.get("settings")
    if settings is None and creating:
        body["settings"] = settings = {}
    if isinstance(settings, dict):
        settings["base_url"] = world.sandbox.base_url
        if body.get("type") == "webhook":
            settings["url"] = world.sandbox.base_url


def aim(case: schemathesis.Case[Any], world: SecurityWorld) -> None:
    """Aim the case's ids at the world's objects (fresh ones for destructive writes) and keep
    every integration it touches on loopback."""
    method, path = case.method.upper(), case.operation.path
    destroys = method == "DELETE" or (method == "PUT" and path.startswith(INTEGRATIONS))
    params = case.path_parameters or {}
    for name, value in list(params.items()):
        if name == "distinct_id":
            params[name] = PERSON if isinstance(value, str) and len(value) % 2 == 0 else value
            continue
        if not _ordinary(value):
            continue  # an edge value, sent as generated
        if name == "project_id":
            params[name] = world.project.id
        elif name == "cohort_id":
            params[name] = world.new_cohort("Fuzzed away") if destroys else world.cohort_id
        elif name == "integration_id":
            params[name] = world.new_integration() if destroys else world.integration_id
        elif name == "sync_id":
            params[name] = world.new_sync("Fuzzed sync") if destroys else world.sync_id
        elif name == "run_id":
            params[name] = world.run_id
    body = case.body
    if not isinstance(body, dict):
        return
    if path in (INTEGRATIONS, f"{INTEGRATIONS}/{{integration_id}}") and method in ("POST", "PUT"):
        _loopback_endpoints(world, body, creating=method == "POST")
    if "cohort_id" in body:
        exporting = method == "POST" and path.endswith("/syncs")
        cohort = world.new_cohort("Fuzzed export") if exporting else world.cohort_id
        body["cohort_id"] = _aimed(body["cohort_id"], cohort)
    if "integration_id" in body:
        body["integration_id"] = _aimed(body["integration_id"], world.integration_id)


def test_names_off_loopback_do_not_resolve(loopback_only: list[str]) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("partner.example", 443)
    assert loopback_only.pop() == "partner.example"
    assert socket.getaddrinfo("127.0.0.1", 80)


def test_the_served_document_is_the_one_tested(security_world: SecurityWorld) -> None:
    with security_world.client() as client:
        served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    documented = {
        f"{method.upper()} {path}"
        for path, operations in DOCUMENT["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    }
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    tested = {result.ok().label for result in results if isinstance(result, Ok)}
    assert tested == documented


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
def test_api_answers_as_documented(
    case: schemathesis.Case[Any],
    role: str,
    security_world: SecurityWorld,
    loopback_only: list[str],
    request: pytest.FixtureRequest,
) -> None:
    label = case.operation.label
    known = KNOWN_BUGS.get(label)
    if known and security_world.engine_name in known.engines and role in known.roles:
        request.applymarker(pytest.mark.xfail(strict=True, reason=known.what))
    skipped = SKIPPED_CHECKS.get(label, {})
    checks = [check for name, check in CHECKS.items() if name not in skipped]
    aim(case, security_world)
    token = security_world.callers[role].token
    before = len(loopback_only)
    case.call_and_validate(
        base_url=security_world.url,
        headers={"Authorization": f"Bearer {token}"},
        checks=checks,
        timeout=30,
    )
    assert len(loopback_only) == before, f"{label} tried to reach {loopback_only[before:]}"
