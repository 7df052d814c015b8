"""Connected partner accounts (R-INT-1 … R-INT-6): connect with a check, list, edit, disconnect.

Credentials are sealed with the keyring before they reach the database and are never part of
an :class:`Integration`'s JSON; they are bound to the endpoint they were entered for (a new URL,
base URL or region needs them entered again). Every partner call passes the outbound guard. A
partner call never runs inside a database transaction; each change is audited in its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.destinations import registry
from cohortsync.destinations.base import Destination
from cohortsync.destinations.connection import ConnectorConfig
from cohortsync.destinations.errors import DestinationError, EndpointRefused, TransientError
from cohortsync.destinations.http import RetryPolicy
from cohortsync.destinations.shared_budgets import budgets_for
from cohortsync.domain.audit import actor_for
from cohortsync.domain.errors import BatchError, Conflict
from cohortsync.domain.integrations import Integration, IntegrationStatus
from cohortsync.ingest.partners.registry import generates_key, sends_events
from cohortsync.keyring import Keyring
from cohortsync.outbound.guard import OutboundGuard, OutboundRefused
from cohortsync.outbound.urls import masked, outline
from cohortsync.partners.spec import PartnerSpec
from cohortsync.services import webhook_secrets
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.integration_store import IntegrationStore
from cohortsync.storage.sync_store import SyncStore

# Settings that say where the credentials go: changing one needs the credentials entered again.
ENDPOINT_SETTINGS = ("url", "base_url", "region")


# What a member reads instead of the partner's words (which may quote whatever the URL reached).
MEMBER_ERROR = (
    "the partner refused the last check or could not be reached; a project admin can see why"
)


def _seen(integration: Integration) -> Integration:
    """The integration as shown: whether its partner sends events back decides its webhook."""
    return replace(integration, sends_events=sends_events(integration.type))


def shown(integration: Integration, admin: bool) -> Integration:
    """The integration as a person may see it: for admins URLs with any credential in them
    masked (one stored before they were refused), for members only their scheme and host (a
    path may be a token); and for members the partner's error replaced by
    :data:`MEMBER_ERROR` (admins read the partner's own words, trimmed)."""
    show = masked if admin else outline
    settings = {
        name: show(value) if name in ("url", "base_url") and isinstance(value, str) else value
        for name, value in integration.settings.items()
    }
    error = integration.error if admin or integration.error is None else MEMBER_ERROR
    return replace(integration, settings=settings, error=error)


class IntegrationService:
    """Use cases of integrations, over one database and one keyring."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        clock: Clock,
        *,
        allow_custom_endpoints: bool = False,
        allow_private_endpoints: bool = False,
        guard: OutboundGuard | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        secret_overlap: timedelta = webhook_secrets.DEFAULT_OVERLAP,
    ) -> None:
        self._engine = engine
        self._secret_overlap = secret_overlap
        self._keyring = keyring
        self._clock = clock
        self._allow_custom = allow_custom_endpoints
        # Which addresses partner calls may reach (``guard``: a test's own name lookup).
        self._guard = guard or OutboundGuard(allow_private=allow_private_endpoints)
        # Connecting is interactive: a short retry budget, so the admin hears back quickly.
        self._retry = retry or RetryPolicy(attempts=3, base_seconds=0.5, budget_seconds=10)
        self._sleep = sleep
        self._timeout = timeout
        # Partner accounts' budgets: in PostgreSQL, shared by every process; SQLite: in process.
        self._budgets = budgets_for(engine)

    def _build(
        self,
        project_id: int,
        spec: PartnerSpec,
        credentials: Mapping[str, str],
        settings: Mapping[str, Any],
        retry: RetryPolicy | None = None,
        simplified: bool | None = None,
    ) -> Destination:
        if simplified is None:
            with read_transaction(self._engine) as connection:
                simplified = IntegrationStore(connection).simplified_id_merge(project_id)
        config = ConnectorConfig(
            credentials=credentials,
            settings=settings,
            base_url=registry.base_url(spec, settings),
            project_id=project_id,
            simplified_id_merge=simplified,
            retry=retry or self._retry,
            sleep=self._sleep,
            clock=self._clock,
            timeout=self._timeout,
            guard=self._guard,
            budgets=self._budgets,
        )
        return spec.build(config)

    def _check(
        self,
        project_id: int,
        spec: PartnerSpec,
        credentials: Mapping[str, str],
        settings: Mapping[str, Any],
    ) -> tuple[IntegrationStatus, str | None]:
        destination = self._build(project_id, spec, credentials, settings)
        try:
            destination.check()
        except EndpointRefused as error:  # nothing was sent; nothing is stored
            raise OutboundRefused(f"{spec.title} was not called: {error.message}") from None
        except ValueError:  # a reply that is not JSON where the partner's API answers JSON
            return (
                IntegrationStatus.ERROR,
                f"the endpoint did not answer as {spec.title}'s API does; check the settings",
            )
        except TransientError as error:
            return (
                IntegrationStatus.ERROR,
                f"{spec.title} could not be reached ({error.message}); try again later",
            )
        except DestinationError as error:
            return IntegrationStatus.ERROR, f"{spec.title} refused the credentials: {error.message}"
        finally:
            destination.close()
        return IntegrationStatus.CONNECTED, None

    def connect(
        self,
        project_id: int,
        kind: str,
        credentials: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
        name: str | None = None,
        created_by: int | None = None,
    ) -> Integration:
        """Check the credentials against the partner, then store the integration as
        **connected** or with the partner's error."""
        spec = registry.partner(kind)
        checked_credentials = registry.check_credentials(spec, credentials)
        checked_settings = registry.check_settings(spec, settings or {}, self._allow_custom)
        title = (name or spec.title).strip()
        if not title or len(title) > 255:
            raise BatchError("name must be 1-255 characters")
        status, error = self._check(project_id, spec, checked_credentials, checked_settings)
        now = self._clock.now()
        with write_transaction(self._engine) as connection:
            new_id = IntegrationStore(connection).insert(
                {
                    "project_id": project_id,
                    "type": spec.type,
                    "name": title,
                    "credentials": self._keyring.seal(checked_credentials),
                    "settings": checked_settings,
                    "status": status,
                    "error": error,
                    "created_by": created_by,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            secret = None
            if sends_events(spec.type):
                secret = webhook_secrets.issue(connection, self._keyring, new_id, now)
            AuditStore(connection).record(
                project_id=project_id,
                user_id=created_by,
                actor=actor_for(created_by),
                action="integration.connect",
                target=f"integration:{new_id}",
                detail={
                    "type": spec.type,
                    "name": title,
                    "settings": sorted(checked_settings),
                    "status": str(status),
                },
                at=now,
            )
        return replace(self.get(project_id, new_id), webhook_secret=secret)

    def rotate_webhook_secret(
        self,
        project_id: int,
        integration_id: int,
        partner_key: str | None = None,
        user_id: int | None = None,
    ) -> Integration:
        """A new webhook secret, shown once in the answer; the previous one keeps working for
        the overlap (default a day) so the partner's settings can catch up. ``partner_key`` is a
        signing key the partner made itself (Xtremepush's): it becomes the secret and, having
        been typed by the admin, is not shown back. Audited as done by ``user_id``."""
        current = self.get(project_id, integration_id)
        if not sends_events(current.type):
            raise Conflict(f"{current.type} integrations do not send events back")
        key = None
        if partner_key is not None:
            if not generates_key(current.type):
                raise Conflict(
                    f"{current.type} does not make its own signing key; rotate without one"
                )
            key = webhook_secrets.partner_key(partner_key)
        if current.status == IntegrationStatus.DISCONNECTED:
            raise Conflict("the integration is disconnected; connect a new one")
        with write_transaction(self._engine) as connection:
            secret, until = webhook_secrets.rotate(
                connection,
                self._keyring,
                integration_id,
                self._clock.now(),
                self._secret_overlap,
                secret=key,
                user_id=user_id,
            )
        shown = None if key is not None else secret
        return replace(current, webhook_secret=shown, previous_secret_until=until)

    def update(
        self,
        project_id: int,
        integration_id: int,
        *,
        credentials: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        name: str | None = None,
        user_id: int | None = None,
    ) -> Integration:
        """Change credentials, settings or name; the partner is checked again. Stored
        credentials never follow a new URL, base URL or region: those need them entered again."""
        current = self.get(project_id, integration_id)
        if current.status == IntegrationStatus.DISCONNECTED:
            raise Conflict("the integration is disconnected; connect a new one")
        spec = registry.partner(current.type)
        merged = {**current.settings, **(settings or {})}
        new_settings = registry.check_settings(spec, merged, self._allow_custom)
        if credentials is not None:
            new_credentials = registry.check_credentials(spec, credentials)
        else:
            new_credentials = self._credentials(project_id, integration_id)
            _refuse_moving(spec, current.settings, new_settings, new_credentials)
        status, error = self._check(project_id, spec, new_credentials, new_settings)
        now = self._clock.now()
        values: dict[str, Any] = {
            "credentials": self._keyring.seal(new_credentials),
            "settings": new_settings,
            "error": error,
            "updated_at": now,
        }
        if name is not None:
            values["name"] = name.strip() or current.name
        changed = sorted(
            key
            for key in {*current.settings, *new_settings}
            if current.settings.get(key) != new_settings.get(key)
        )
        with write_transaction(self._engine) as connection:
            IntegrationStore(connection).move(integration_id, status, values)
            AuditStore(connection).record(
                project_id=project_id,
                user_id=user_id,
                actor=actor_for(user_id),
                action="integration.update",
                target=f"integration:{integration_id}",
                detail={
                    "type": current.type,
                    "name": values.get("name", current.name),
                    "settings": changed,
                    "reauthorized": credentials is not None,
                    "status": str(status),
                },
                at=now,
            )
        return self.get(project_id, integration_id)

    def list(self, project_id: int) -> list[Integration]:
        """The project's integrations, oldest first (disconnected ones included)."""
        with read_transaction(self._engine) as connection:
            return [_seen(i) for i in IntegrationStore(connection).for_project(project_id)]

    def get(self, project_id: int, integration_id: int) -> Integration:
        """One integration of the project, or NotFound."""
        with read_transaction(self._engine) as connection:
            return _seen(IntegrationStore(connection).get(project_id, integration_id))

    def disconnect(
        self, project_id: int, integration_id: int, user_id: int | None = None
    ) -> Integration:
        """Mark the integration disconnected and forget its credentials; its syncs stop
        (the sync engine runs nothing for an integration that is not connected)."""
        current = self.get(project_id, integration_id)
        now = self._clock.now()
        with write_transaction(self._engine) as connection:
            store = IntegrationStore(connection)
            store.move(
                integration_id,
                IntegrationStatus.DISCONNECTED,
                {
                    "error": None,
                    "credentials": self._keyring.seal({}),
                    "updated_at": now,
                },
            )
            webhook_secrets.forget(connection, integration_id)  # its partner events are refused
            SyncStore(connection).stop_all(integration_id, now)  # R-INT-3: its syncs stop
            AuditStore(connection).record(
                project_id=project_id,
                user_id=user_id,
                actor=actor_for(user_id),
                action="integration.delete",
                target=f"integration:{integration_id}",
                detail={"type": current.type, "name": current.name},
                at=now,
            )
        return self.get(project_id, integration_id)

    def flag(self, project_id: int, integration_id: int, message: str) -> None:
        """Mark a connected integration as needing attention, with the partner's words (a sync
        was refused: revoked key, lost permission); its syncs wait until it is fixed."""
        with write_transaction(self._engine) as connection:
            IntegrationStore(connection).move(
                integration_id,
                IntegrationStatus.ERROR,
                {"error": message, "updated_at": self._clock.now()},
                only_from=(IntegrationStatus.CONNECTED,),
            )

    def _credentials(self, project_id: int, integration_id: int) -> dict[str, str]:
        with read_transaction(self._engine) as connection:
            sealed = IntegrationStore(connection).sealed_credentials(project_id, integration_id)
        return self._keyring.open(sealed)

    def destination(
        self, project_id: int, integration_id: int, retry: RetryPolicy | None = None
    ) -> Destination:
        """A connector for a connected integration; ``retry`` is the policy of its calls
        (default: the short one of interactive checks)."""
        return self.connector(self.get(project_id, integration_id), retry)

    def connector(self, integration: Integration, retry: RetryPolicy | None = None) -> Destination:
        """A connector for an integration already read (the sync engine reads it once a run)."""
        if integration.status == IntegrationStatus.DISCONNECTED:
            raise Conflict(f"integration {integration.id} is disconnected")
        spec = registry.partner(integration.type)
        with read_transaction(self._engine) as connection:
            store = IntegrationStore(connection)
            sealed = store.sealed_credentials(integration.project_id, integration.id)
            simplified = store.simplified_id_merge(integration.project_id)
        credentials = self._keyring.open(sealed)
        return self._build(
            integration.project_id, spec, credentials, integration.settings, retry, simplified
        )


def _refuse_moving(
    spec: PartnerSpec,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    stored: Mapping[str, str],
) -> None:
    """A BatchError when ``after`` sends the ``stored`` credentials somewhere ``before`` did
    not (a new URL, base URL or region) without their being entered again."""
    moved = [name for name in ENDPOINT_SETTINGS if before.get(name) != after.get(name)]
    if moved and stored:
        fields = ", ".join(f"credentials.{name}" for name in spec.credentials.model_fields)
        raise BatchError(
            f"changing settings.{moved[0]} would send the stored credentials to a new "
            f"endpoint: enter the credentials again ({fields}) in the same request"
        )


class WebhookCache(Protocol):
    """What keeps an integration's webhook in memory (the partner events service)."""

    def forget(self, integration_id: int) -> None:
        """Drop what is cached about the integration."""


def disconnect(
    service: IntegrationService,
    webhooks: WebhookCache,
    project_id: int,
    integration_id: int,
    user_id: int | None = None,
) -> Integration:
    """Disconnect (credentials forgotten, syncs stopped) and have this process refuse the
    integration's webhook calls at once rather than when its cached copy expires: what the API
    and the web UI do, ``user_id`` being who asked."""
    disconnected = service.disconnect(project_id, integration_id, user_id)
    webhooks.forget(integration_id)
    return disconnected


def reseal_all(engine: Engine, keyring: Keyring) -> int:
    """Re-encrypt every integration's credentials and webhook secrets with the newest key;
    returns how many integrations' credentials were re-sealed."""
    with write_transaction(engine) as connection:
        store = IntegrationStore(connection)
        sealed = store.all_sealed_credentials()
        for integration_id, credentials in sealed:
            store.update(integration_id, {"credentials": keyring.reseal(credentials)})
        webhook_secrets.reseal(connection, keyring)
    return len(sealed)
