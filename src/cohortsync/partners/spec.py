"""What a partner declares about itself (:class:`PartnerSpec`): what connecting it takes, the
factory of its connector, and, where it has them, its event format, outreach events, emulator
and the contract the conformance suite holds its connector and emulator to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette

from cohortsync.destinations.base import Capabilities, Destination
from cohortsync.destinations.connection import ConnectorConfig
from cohortsync.ingest.partners.base import PartnerFormat
from cohortsync.partners.fields import PartnerCredentials, PartnerSettings, form_of
from cohortsync.sandbox.faults import SandboxState


@dataclass(frozen=True)
class Emulator:
    """A partner's emulator: its state, the app serving it, and how an integration points at it
    (``path`` under the server's URL, put in the ``url_setting`` setting)."""

    state: Callable[[], SandboxState]
    app: Callable[[Any], Starlette]
    path: str = ""
    url_setting: str = "base_url"


@dataclass(frozen=True)
class Outreach:
    """The events a partner sends about its own messages (exempt from MTU), and the headers its
    webhook calls carry ``body`` with, given the integration's secret (and when it signed)."""

    events: tuple[str, ...]
    headers: Callable[[str, bytes, int | None], dict[str, str]]


@dataclass(frozen=True)
class Contract:
    """What the conformance suite (``tests/destinations/test_conformance.py``) checks a
    partner's connector against its emulator for, besides its :class:`Capabilities`.

    ``refusal`` is the partner's own words for wrong or revoked credentials: a check or a run
    refused with them stops, and the message the admin reads contains them. ``rejects_members``
    says the partner refuses members one by one inside an answer that takes the rest of the
    batch (False: it acknowledges a batch as a whole, as the cohort-webhook protocol does)."""

    refusal: str
    rejects_members: bool = True


CredentialsModel = type[PartnerCredentials]  # named here: the spec's field ``type`` shadows type
SettingsModel = type[PartnerSettings]


@dataclass(frozen=True)
class PartnerSpec:
    """What connecting one partner takes (its typed credentials and settings), the factory of
    its connector, and the parts it has besides. A partner with an emulator declares its
    :class:`Contract` too: the conformance suite runs against every emulator."""

    type: str
    title: str
    credentials: CredentialsModel
    settings: SettingsModel
    capabilities: Capabilities
    build: Callable[[ConnectorConfig], Destination]
    events: PartnerFormat | None = None  # the partner's webhook events, where it sends them
    outreach: Outreach | None = None
    emulator: Emulator | None = None
    contract: Contract | None = None

    def __post_init__(self) -> None:
        if self.emulator is not None and self.contract is None:
            raise ValueError(
                f"partner {self.type!r} has an emulator but no contract: declare what the "
                "conformance suite checks it for (PartnerSpec.contract)"
            )

    @property
    def regions(self) -> Mapping[str, str]:
        """Region -> base URL ({} where the URL is a setting)."""
        return self.settings.regions()

    @property
    def default_region(self) -> str | None:
        """The region a new integration gets unless told otherwise."""
        return str(self.settings.model_fields["region"].default) if self.regions else None

    @property
    def region_label(self) -> str:
        """What the partner calls its regions ("Region", CleverTap's "Data center")."""
        form = form_of(self.settings.model_fields["region"])
        return form.label if form is not None else "Region"

    @property
    def list_template(self) -> str:
        """The list name template a new integration gets unless told otherwise."""
        return str(self.settings.model_fields["list_name_template"].default)
