"""The OpenAPI document as the API really answers: errors are the uniform
``{"error": {"code", "message"}}`` body with 400 for malformed input (FastAPI's own document
says 422 with its validation schema, which this API never sends)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "path": {"type": "string"},
            },
        }
    },
}
# Every /api/v1 operation may answer these; an operation's own entries (a 429 with its
# Retry-After, say) are kept.
COMMON_ERRORS = {
    "400": "The request is malformed or breaks a rule; the message says which field.",
    "401": "No valid bearer token.",
    "403": "The person's role does not allow this.",
    "404": "No such object in this project.",
}
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def documented(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the API's real error responses."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path.startswith("/api/v1/"):
                for status, description in COMMON_ERRORS.items():
                    responses.setdefault(status, _error(description))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    return document


def install_error_documentation(app: FastAPI) -> None:
    """Serve :func:`documented` (built once) as ``/openapi.json``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = documented(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
