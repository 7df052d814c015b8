"""The OpenAPI document says what the API answers on errors: the uniform error body with 400
for malformed input, never FastAPI's 422 validation schema that the API does not send."""

from __future__ import annotations

from typing import Any

import pytest

from cohortsync.domain.accounts import Project
from tests.conftest import LiveServer
from tests.helpers import admin_token

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_every_api_operation_documents_the_error_body_it_sends(
    live_server: LiveServer, project: Project
) -> None:
    with live_server.client() as client:
        document: dict[str, Any] = client.get("/openapi.json").json()
        token = admin_token(live_server.engine, project.id)
        refused = client.post(
            f"/api/v1/projects/{project.id}/cohorts",
            json={"name": 5},
            headers={"Authorization": f"Bearer {token}"},
        )
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
    ]
    assert operations
    for path, method, operation in operations:
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        assert responses["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }, (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert refused.status_code == 400
    assert set(refused.json()["error"]) >= {"code", "message"}
