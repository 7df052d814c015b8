"""Iterable's spec: its credentials and settings (from which its Connect dialog and checks are
generated), and where each of its parts lives."""

from __future__ import annotations

from typing import Annotated

from pydantic import SecretStr

from cohortsync.partners.fields import Form, PartnerCredentials, PartnerSettings
from cohortsync.partners.iterable.destination import CAPABILITIES, IterableDestination
from cohortsync.partners.iterable.emulator import IterableSandbox, create_app
from cohortsync.partners.iterable.events import IterableFormat
from cohortsync.partners.iterable.outreach import OUTREACH
from cohortsync.partners.spec import Contract, Emulator, PartnerSpec

HOSTS = {"us": "https://api.iterable.com", "eu": "https://api.eu.iterable.com"}


class IterableCredentials(PartnerCredentials):
    """A server-side API key (it belongs to one data center)."""

    api_key: Annotated[SecretStr, Form("API key", "A server-side key of your Iterable project.")]


class IterableSettings(PartnerSettings):
    """The data center of the project."""

    region: Annotated[str, Form("Region", choices=HOSTS)] = "us"


SPEC = PartnerSpec(
    type="iterable",
    title="Iterable",
    credentials=IterableCredentials,
    settings=IterableSettings,
    capabilities=CAPABILITIES,
    build=IterableDestination,
    events=IterableFormat(),
    outreach=OUTREACH,
    emulator=Emulator(IterableSandbox, create_app),
    contract=Contract("BadApiKey: Invalid API key"),
)
