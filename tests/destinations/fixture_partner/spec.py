"""Postbox's spec: its credentials and settings (from which its Connect dialog and checks are
generated), its capabilities, its emulator, and the contract the conformance suite checks."""

from __future__ import annotations

from typing import Annotated

from pydantic import SecretStr

from cohortsync.partners.fields import Form, PartnerCredentials, PartnerSettings
from cohortsync.partners.spec import Contract, Emulator, PartnerSpec
from tests.destinations.fixture_partner.destination import CAPABILITIES, PostboxDestination
from tests.destinations.fixture_partner.emulator import PostboxSandbox, create_app

HOSTS = {"main": "https://api.postbox.invalid"}


class PostboxCredentials(PartnerCredentials):
    """An API token of the account."""

    api_token: Annotated[SecretStr, Form("API token", "Settings → API tokens in Postbox.")]


class PostboxSettings(PartnerSettings):
    """Postbox has one host."""

    region: Annotated[str, Form("Region", choices=HOSTS)] = "main"


SPEC = PartnerSpec(
    type="postbox",
    title="Postbox",
    credentials=PostboxCredentials,
    settings=PostboxSettings,
    capabilities=CAPABILITIES,
    build=PostboxDestination,
    emulator=Emulator(PostboxSandbox, create_app),
    contract=Contract("Invalid API token"),
)
