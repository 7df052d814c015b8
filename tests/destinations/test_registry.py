"""The partner registry: one line registers a partner, and a partner declared elsewhere (a test's
fixture, a plugin) joins at run time with one call; its dialog and checks come from its models."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import pytest
from pydantic import SecretStr

from cohortsync.destinations import registry
from cohortsync.domain.errors import BatchError
from cohortsync.ingest.partners.registry import sends_events
from cohortsync.partners.fields import Form, PartnerCredentials, PartnerSettings
from cohortsync.partners.registry import PARTNERS
from cohortsync.sandbox.fleet import EMULATORS
from cohortsync.web.partner_forms import connect_fields


class MinimalCredentials(PartnerCredentials):
    """One token."""

    token: Annotated[SecretStr, Form("Token", "The account's token.")]


class MinimalSettings(PartnerSettings):
    """One region."""

    region: Annotated[str, Form("Region", choices={"x": "https://x.invalid"})] = "x"


MINIMAL = replace(
    PARTNERS["webhook"],
    type="minimal",
    title="Minimal",
    credentials=MinimalCredentials,
    settings=MinimalSettings,
    emulator=None,
)


def test_a_partner_registered_at_run_time_is_everywhere_until_taken_out() -> None:
    with PARTNERS.registered(MINIMAL):
        spec = registry.partner("minimal")
        assert [f.label for f in connect_fields(spec)] == ["Token", "Region"]
        assert registry.check_credentials(spec, {"token": " t "}) == {"token": "t"}
        with pytest.raises(BatchError, match=r"credentials\.token is required for Minimal"):
            registry.check_credentials(spec, {})
        assert registry.base_url(spec, registry.check_settings(spec, {}, False)) == (
            "https://x.invalid"
        )
        assert "minimal" not in EMULATORS and not sends_events("minimal")
    with pytest.raises(BatchError, match="unknown integration type 'minimal'"):
        registry.partner("minimal")


def test_register_returns_its_undo_and_refuses_a_second_of_a_type() -> None:
    undo = PARTNERS.register(MINIMAL)
    try:
        with pytest.raises(ValueError, match="already registered"):
            PARTNERS.register(MINIMAL)
    finally:
        undo()
    assert "minimal" not in PARTNERS


def test_credentials_are_secret_in_their_model() -> None:
    checked = PARTNERS["iterable"].credentials.model_validate({"api_key": "sk-live-123"})
    assert "sk-live-123" not in repr(checked) and "sk-live-123" not in str(checked)
