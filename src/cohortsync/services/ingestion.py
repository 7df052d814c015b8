"""The ingestion use cases behind /track, /engage, /groups and /import: who may write where, and
(through :mod:`cohortsync.ingest.admission`) how fast and in whose turn."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import Clock, now_ms
from cohortsync.credentials import hash_secret
from cohortsync.domain.accounts import Project
from cohortsync.domain.errors import AuthenticationError, RecordError
from cohortsync.domain.events import MIN_EVENT_TIME_MS
from cohortsync.ingest.admission import Admission, IngestLimits, request_cost
from cohortsync.ingest.events import EventIngestor, PreparedBatch
from cohortsync.ingest.parse_pool import ImportBody, ParsePool
from cohortsync.ingest.profiles import ingest_group_updates, ingest_profile_updates
from cohortsync.ingest.results import FailedRecord, IngestResult, failure
from cohortsync.ingest.storable import NUL
from cohortsync.services.projects import ProjectService
from cohortsync.settings import Settings
from cohortsync.ttl_cache import TtlCache

CACHE_SECONDS = 60.0


class Kind(StrEnum):
    """What a request's records are."""

    TRACK = "track"  # recent events, by token
    IMPORT = "import"  # events of any age, into an authenticated project
    ENGAGE = "engage"  # profile updates, by token
    GROUPS = "groups"  # group profile updates, by token


@dataclass
class Routed:
    """The records of one request by the project they go to, ``(index, record)`` pairs, and
    those that go nowhere (no project's token); ``size``: the request's decompressed bytes."""

    kind: Kind
    parts: dict[int, tuple[Project, list[tuple[int, Any]]]] = field(default_factory=dict)
    failed: list[FailedRecord] = field(default_factory=list)
    size: int = 0

    @classmethod
    def into(cls, project: Project, records: Sequence[Any], size: int = 0) -> Routed:
        """Every record of an /import (of ``size`` bytes) into its authenticated project."""
        return cls(Kind.IMPORT, {project.id: (project, list(enumerate(records)))}, size=size)

    @property
    def projects(self) -> tuple[int, ...]:
        """The projects written to (the writer's turn is theirs)."""
        return tuple(sorted(self.parts))

    def costs(self) -> dict[int, int]:
        """What each project's rate limit is charged: its records, and its share (by records)
        of the body's KiB."""
        total = sum(len(part) for _, part in self.parts.values()) + len(self.failed)
        return {
            project_id: request_cost(len(part), self.size * len(part) // max(total, 1))
            for project_id, (_, part) in self.parts.items()
        }


class IngestionService:
    """Authenticates ingestion requests and hands their records to the ingestors."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        track_max_age_days: int = 5,
        parse_processes: int = 0,
        limits: IngestLimits | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._parse_pool = ParsePool(parse_processes)
        # the clock, not a monotonic timer: tests move time to refill the buckets
        self.admission = Admission(
            limits or IngestLimits(),
            max(parse_processes, 1),
            lambda: clock.now().timestamp(),
        )
        self._track_max_age = timedelta(days=track_max_age_days)
        self._events = EventIngestor(engine)
        self._projects = ProjectService(engine, clock)
        # Short-lived caches: a rotated secret or a new identity mode applies within a minute.
        self._by_token: TtlCache[str, Project] = TtlCache(CACHE_SECONDS)
        self._import_auth: TtlCache[tuple[str, str | None], Project] = TtlCache(CACHE_SECONDS)

    @classmethod
    def from_settings(
        cls, engine: Engine, clock: Clock, settings: Settings, parse_processes: int
    ) -> IngestionService:
        """The service with the settings' limits (COHORTSYNC_INGEST_*)."""
        limits = IngestLimits(
            settings.ingest_rate_per_second,
            settings.ingest_burst,
            settings.ingest_waiting_per_project,
        )
        return cls(engine, clock, settings.track_max_age_days, parse_processes, limits)

    @property
    def engine(self) -> Engine:
        """The database the service writes to."""
        return self._engine

    def _project_for_token(self, token: Any) -> Project | None:
        if not isinstance(token, str) or not token or len(token) > 255 or NUL in token:
            return None  # no project's token (and not sent to the database to find out)
        project = self._by_token.get(token)
        if project is None:
            project = self._projects.by_token(token)
            if project is not None:
                self._by_token.put(token, project)
        return project

    def forget_projects(self) -> None:
        """Drop cached projects (after a project's token or identity mode changed)."""
        self._by_token.clear()
        self._import_auth.clear()

    def route(self, kind: Kind, records: Sequence[Any], size: int = 0) -> Routed:
        """A /track, /engage or /groups request's records (``size`` bytes decompressed) by the
        project their token names; AuthenticationError when none names one."""
        token_of, field = _TOKENS[kind]
        routed = Routed(kind, size=size)
        for index, record in enumerate(records):
            project = self._project_for_token(token_of(record))
            if project is None:
                error = RecordError(field, f"'{field}' is missing or is not a project's token")
                routed.failed.append(failure(index, record, error))
                continue
            routed.parts.setdefault(project.id, (project, []))[1].append((index, record))
        if not routed.parts:
            raise AuthenticationError(
                f"no record carries a valid project token in '{field}'; "
                "copy the token from `cohortsync projects show`"
            )
        return routed

    def _routed(self, kind: Kind, records: Sequence[Any] | Routed) -> Routed:
        return records if isinstance(records, Routed) else self.route(kind, records)

    def _store(self, routed: Routed) -> IngestResult:
        """Validate and store records routed by token, each project's in one transaction."""
        now = now_ms(self._clock)
        oldest = now - int(self._track_max_age.total_seconds() * 1000)
        result = IngestResult(failed=list(routed.failed))
        for project, part in routed.parts.values():
            if routed.kind is Kind.TRACK:
                stored = self._events.ingest(project, part, now_ms=now, oldest_ms=oldest)
            elif routed.kind is Kind.ENGAGE:
                stored = ingest_profile_updates(self._engine, project, part, now_ms=now)
            else:
                stored = ingest_group_updates(self._engine, project, part, now_ms=now)
            result.merge(stored)
        return result

    def track(self, records: Sequence[Any] | Routed) -> IngestResult:
        """/track: recent events, each carrying its project token in ``properties.token`` (or
        already routed by :meth:`route`)."""
        return self._store(self._routed(Kind.TRACK, records))

    def by_token(self, routed: Routed) -> IngestResult:
        """/track, /engage or /groups, as the routed records' kind says."""
        if routed.kind is Kind.TRACK:
            return self.track(routed)
        if routed.kind is Kind.ENGAGE:
            return self.engage(routed)
        return self.groups(routed)

    def import_events(
        self,
        project: Project,
        records: Sequence[Any],
        within: Callable[[Connection], None] | None = None,
    ) -> IngestResult:
        """/import and file imports: events of any age since 1971, into an authenticated project."""
        return self._events.ingest(
            project,
            list(enumerate(records)),
            now_ms=now_ms(self._clock),
            oldest_ms=MIN_EVENT_TIME_MS,
            within=within,
        )

    async def prepare_import(
        self, project: Project, raw: bytes, content_type: str, content_encoding: str
    ) -> tuple[PreparedBatch, int]:
        """Decode and validate an /import body (in a helper process when the service has them);
        returns the batch and the time it was validated against, for :meth:`store_import`."""
        now = now_ms(self._clock)
        batch = await self._parse_pool.prepare_async(
            ImportBody(
                raw,
                content_type,
                content_encoding,
                project.id,
                project.identity_mode,
                now,
                MIN_EVENT_TIME_MS,
            )
        )
        return batch, now

    def store_import(self, project: Project, batch: PreparedBatch, now: int) -> IngestResult:
        """Store a batch made by :meth:`prepare_import`."""
        return self._events.store(project, batch, now_ms=now)

    def close(self) -> None:
        """Release the helper processes and the ingestion thread."""
        self._parse_pool.close()
        self.admission.close()

    def engage(self, records: Sequence[Any] | Routed) -> IngestResult:
        """/engage: profile updates, each carrying ``$token`` (or routed by :meth:`route`)."""
        return self._store(self._routed(Kind.ENGAGE, records))

    def import_profiles(
        self,
        project: Project,
        records: Sequence[Any],
        within: Callable[[Connection], None] | None = None,
    ) -> IngestResult:
        """Profile updates into an authenticated project (file imports)."""
        return ingest_profile_updates(
            self._engine,
            project,
            list(enumerate(records)),
            now_ms=now_ms(self._clock),
            within=within,
        )

    def groups(self, records: Sequence[Any] | Routed) -> IngestResult:
        """/groups: group profile updates, each carrying ``$token`` (or routed by
        :meth:`route`)."""
        return self._store(self._routed(Kind.GROUPS, records))

    def authenticate_import(self, username: str, password: str, project_id: str | None) -> Project:
        """HTTP Basic for /import: a service account with ``?project_id=``, or the project's API
        secret as the username with an empty password."""
        key = (hash_secret(f"{username}\x00{password}"), project_id)
        cached = self._import_auth.get(key)
        if cached is not None:
            return cached
        if project_id is not None:
            project = self._projects.for_service_account(
                username, password, _project_number(project_id)
            )
        elif password == "":
            project = self._projects.for_api_secret(username)
        else:
            raise AuthenticationError(
                "service account credentials need ?project_id=; "
                "or send the project's API secret as the username with an empty password"
            )
        if project is None:
            raise AuthenticationError("wrong /import credentials (service account or API secret)")
        self._import_auth.put(key, project)
        return project


def _project_number(text: str) -> int:
    """``?project_id=`` as the number of a project (one both engines can hold)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise AuthenticationError("'project_id' must be the number of a project")
    return int(text)


def _event_token(record: Any) -> Any:
    if isinstance(record, dict) and isinstance(record.get("properties"), dict):
        return record["properties"].get("token")
    return None


def _update_token(record: Any) -> Any:
    return record.get("$token") if isinstance(record, dict) else None


_TOKENS: dict[Kind, tuple[Callable[[Any], Any], str]] = {
    Kind.TRACK: (_event_token, "properties.token"),
    Kind.ENGAGE: (_update_token, "$token"),
    Kind.GROUPS: (_update_token, "$token"),
}
