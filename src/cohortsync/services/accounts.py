"""People who sign in: creating, disabling and removing them, their passwords, their bearer
tokens (expiring, revocable) and throttled signing in. Every change is audited in its own
transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from cohortsync.clock import Clock
from cohortsync.credentials import (
    DEFAULT_PASSWORD_COST,
    HashingSlots,
    PasswordHasher,
    hash_secret,
    new_secret,
)
from cohortsync.domain.accounts import Person, Role, SignInLimits, TokenListing, User
from cohortsync.domain.audit import CLI_ACTOR
from cohortsync.domain.errors import AuthenticationError, Conflict, NotFound
from cohortsync.services.sign_in import Attempt, SignInThrottle
from cohortsync.storage.audit_store import AuditStore
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.project_store import ProjectStore
from cohortsync.storage.token_store import TokenStore
from cohortsync.storage.user_store import UserStore

if TYPE_CHECKING:
    from cohortsync.settings import Settings

TOKEN_PREFIX = "cst_"
# Tokens handed out by signing in (web sessions, POST /api/v1/login) expire after the login
# lifetime; tokens an operator makes (`cohortsync tokens create`) after ``token_days``.
LOGIN_TOKEN = "login"
DEFAULT_LOGIN_LIFETIME = timedelta(hours=12)
DEFAULT_TOKEN_DAYS = 90
MIN_PASSWORD, MAX_PASSWORD = 8, 1000
WRONG = "email or password is wrong"


def _email(email: str) -> str:
    return email.strip().lower()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Conflict(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise Conflict(f"a password may have at most {MAX_PASSWORD} characters")


def _user_id(store: UserStore, email: str) -> int:
    user_id = store.id_by_email(_email(email))
    if user_id is None:
        raise NotFound(f"no user with email {email!r}; see `cohortsync users list`")
    return user_id


class AccountService:
    """People and their tokens, each operation in its own transaction. Sign-in tokens expire
    ``login_lifetime`` after they were made; passwords are hashed at scrypt N=2**``password_cost``
    (at most a few at once, ``hashing``); failed sign-ins are throttled by ``limits``."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        login_lifetime: timedelta = DEFAULT_LOGIN_LIFETIME,
        *,
        password_cost: int = DEFAULT_PASSWORD_COST,
        token_days: int = DEFAULT_TOKEN_DAYS,
        limits: SignInLimits | None = None,
        hashing: HashingSlots | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._login_lifetime = login_lifetime
        self._token_days = token_days
        self._hasher = PasswordHasher(password_cost, hashing)
        self._throttle = SignInThrottle(limits or SignInLimits())

    @classmethod
    def from_settings(cls, engine: Engine, clock: Clock, settings: Settings) -> AccountService:
        """The service as the settings describe it (session length, hash cost, limits)."""
        return cls(
            engine,
            clock,
            settings.session_lifetime,
            password_cost=settings.password_hash_cost,
            token_days=settings.token_days,
            limits=SignInLimits(
                settings.sign_in_account_failures,
                settings.sign_in_address_failures,
                timedelta(minutes=settings.sign_in_window_minutes),
            ),
            hashing=HashingSlots(settings.password_hash_concurrency, wait_seconds=5.0),
        )

    # People

    def create_user(
        self, email: str, password: str, role: Role, project_id: int, *, actor: str = CLI_ACTOR
    ) -> User:
        """A person with a password and a role in one project (added to it if they exist; an
        existing person given another password than theirs is signed out everywhere)."""
        _check_password(password)
        email = _email(email)
        # Slow on purpose, so not while holding the write lock.
        with read_transaction(self._engine) as connection:
            found = UserStore(connection).password(email)
        same = found is not None and self._hasher.verify(password, found.password_hash)
        hashed = self._hasher.hash(password)
        with write_transaction(self._engine) as connection:
            ProjectStore(connection).get(project_id)
            store, now = UserStore(connection), self._clock.now()
            user_id = store.id_by_email(email)
            existing = user_id is not None
            if user_id is None:
                user_id = store.insert(email, hashed, now)
            elif same:
                store.set_password_hash(user_id, hashed)  # the same password, hashed anew
            else:
                self._new_password(connection, user_id, hashed, actor, now)
            store.set_role(user_id, project_id, role)
            detail = {"email": email, "role": role.value, "existing": existing}
            self._audit(connection, actor, "user.create", user_id, detail, project_id)
            return store.get(user_id)

    def set_password(self, email: str, password: str, *, actor: str = CLI_ACTOR) -> int:
        """Replace the person's password; every session and token of theirs stops working
        (how many there were)."""
        _check_password(password)
        hashed = self._hasher.hash(password)
        with write_transaction(self._engine) as connection:
            user_id = _user_id(UserStore(connection), email)
            return self._new_password(connection, user_id, hashed, actor, self._clock.now())

    def _new_password(
        self, connection: Connection, user_id: int, hashed: str, actor: str, now: datetime
    ) -> int:
        UserStore(connection).set_password_hash(user_id, hashed)
        revoked = TokenStore(connection).delete_all_of(user_id)
        detail = {"revoked": revoked}
        self._audit(connection, actor, "user.password", user_id, detail, at=now)
        return revoked

    def user_by_email(self, email: str) -> User | None:
        """The person who signs in with ``email`` (any case), with their roles."""
        with read_transaction(self._engine) as connection:
            store = UserStore(connection)
            user_id = store.id_by_email(_email(email))
            return None if user_id is None else store.get(user_id)

    def count_users(self) -> int:
        """How many people can sign in."""
        with read_transaction(self._engine) as connection:
            return UserStore(connection).count()

    def people(self) -> list[Person]:
        """Everyone, by email, with their roles and whether they are disabled."""
        with read_transaction(self._engine) as connection:
            return UserStore(connection).people()

    def disable(self, email: str, *, force: bool = False, actor: str = CLI_ACTOR) -> None:
        """The person can no longer sign in, and every session and token of theirs stops
        working now. The last admin of a project is kept unless ``force``."""
        with write_transaction(self._engine) as connection:
            store, now = UserStore(connection), self._clock.now()
            user_id = _user_id(store, email)
            self._keep_last_admin(store, user_id, "disable", force)
            store.set_disabled(user_id, now)
            revoked = TokenStore(connection).delete_all_of(user_id)
            detail = {"email": _email(email), "revoked": revoked}
            self._audit(connection, actor, "user.disable", user_id, detail, at=now)

    def enable(self, email: str, *, actor: str = CLI_ACTOR) -> None:
        """A disabled person may sign in again (their old tokens stay revoked)."""
        with write_transaction(self._engine) as connection:
            store = UserStore(connection)
            user_id = _user_id(store, email)
            store.set_disabled(user_id, None)
            self._audit(connection, actor, "user.enable", user_id, {"email": _email(email)})

    def remove(self, email: str, *, force: bool = False, actor: str = CLI_ACTOR) -> None:
        """Forget the person, their roles and tokens (the audit log keeps their email). The last
        admin of a project is kept unless ``force``."""
        with write_transaction(self._engine) as connection:
            store = UserStore(connection)
            user_id = _user_id(store, email)
            self._keep_last_admin(store, user_id, "remove", force)
            roles = {str(p): r.value for p, r in store.get(user_id).roles.items()}
            detail = {"email": _email(email), "roles": roles}
            self._audit(connection, actor, "user.remove", user_id, detail)
            store.delete(user_id)

    @staticmethod
    def _keep_last_admin(store: UserStore, user_id: int, verb: str, force: bool) -> None:
        if force:
            return
        for project_id, role in sorted(store.get(user_id).roles.items()):
            if role is Role.ADMIN and store.active_admins(project_id) == {user_id}:
                raise Conflict(
                    f"this is the last admin of project {project_id}; make someone else admin "
                    f"first (`cohortsync users create --role admin`), or {verb} with --force"
                )

    # Tokens

    def create_token(
        self, email: str, name: str = "cli", days: int | None = None, *, actor: str = CLI_ACTOR
    ) -> str:
        """A new bearer token for the user with ``email``, lasting ``days`` (default: the
        service's token days; 0: until revoked); returned once, stored hashed."""
        if name == LOGIN_TOKEN:
            raise Conflict(f"the name {LOGIN_TOKEN!r} is kept for sign-in sessions; pick another")
        days = self._token_days if days is None else days
        if days < 0:
            raise Conflict("a token lasts 0 (until revoked) or more days")
        with write_transaction(self._engine) as connection:
            store = UserStore(connection)
            user_id = store.id_by_email(_email(email))
            if user_id is None:
                raise NotFound(
                    f"no user with email {email!r}; create one with `cohortsync users create`"
                )
            now = self._clock.now()
            expires = now + timedelta(days=days) if days else None
            token = new_secret(TOKEN_PREFIX)
            token_id = TokenStore(connection).insert(
                user_id, hash_secret(token), name, now, expires
            )
            detail = {"email": _email(email), "name": name, "expires_at": _iso(expires)}
            self._audit(connection, actor, "token.create", user_id, detail, target=token_id)
            return token

    def tokens(self, email: str | None = None) -> list[TokenListing]:
        """Every bearer token (or the person's), sessions included; never the token itself."""
        with read_transaction(self._engine) as connection:
            user_id = None if email is None else _user_id(UserStore(connection), email)
            found = TokenStore(connection).listing(user_id)
        # a sign-in session ends after the login lifetime, which is not stored with it
        return [
            replace(t, expires_at=t.created_at + self._login_lifetime)
            if t.name == LOGIN_TOKEN and t.expires_at is None
            else t
            for t in found
        ]

    def revoke(self, token_id: int, *, actor: str = CLI_ACTOR) -> None:
        """Make token ``token_id`` unusable."""
        with write_transaction(self._engine) as connection:
            tokens = TokenStore(connection)
            owner = tokens.owner(token_id)
            if owner is None:
                raise NotFound(f"no token {token_id}; see `cohortsync tokens list`")
            tokens.delete(token_id)
            self._audit(connection, actor, "token.revoke", owner, {}, target=token_id)

    def revoke_all(self, email: str, *, actor: str = CLI_ACTOR) -> int:
        """Make every token and session of the person unusable; how many there were."""
        with write_transaction(self._engine) as connection:
            user_id = _user_id(UserStore(connection), email)
            revoked = TokenStore(connection).delete_all_of(user_id)
            detail = {"email": _email(email), "revoked": revoked}
            self._audit(connection, actor, "token.revoke", user_id, detail)
            return revoked

    # Signing in and out

    def login(self, email: str, password: str, address: str | None = None) -> str:
        """Check a password and hand out a sign-in token (it expires after the login lifetime;
        see :meth:`user_for_token`). Refused with TooManySignIns while the account or the
        ``address`` has too many recent failures; an unknown email costs what a known one does.
        A hash made with other parameters is upgraded; expired sign-in tokens are deleted."""
        if "\x00" in email or (address is not None and "\x00" in address):
            # no account has such an email, and PostgreSQL cannot even store the attempt
            raise AuthenticationError(WRONG)
        attempt = Attempt(_email(email), address)
        with read_transaction(self._engine) as connection:
            self._throttle.check(connection, attempt, self._clock.now())
            found = UserStore(connection).password(attempt.email)
        matches = self._hasher.verify(password, None if found is None else found.password_hash)
        if found is None or not matches or found.disabled:
            reason = (
                "unknown email" if found is None else "disabled" if matches else "wrong password"
            )
            with write_transaction(self._engine) as connection:
                user_id = None if found is None else found.user_id
                self._throttle.failed(connection, attempt, self._clock.now(), reason, user_id)
            raise AuthenticationError(WRONG)
        upgraded = None
        if not self._hasher.is_current(found.password_hash):
            upgraded = self._hasher.hash(password)
        with write_transaction(self._engine) as connection:
            made = self._clock.now()
            if upgraded is not None:
                UserStore(connection).replace_password_hash(
                    found.user_id, found.password_hash, upgraded
                )
            tokens = TokenStore(connection)
            tokens.delete_made_by(found.user_id, LOGIN_TOKEN, made - self._login_lifetime)
            token = new_secret(TOKEN_PREFIX)
            tokens.insert(found.user_id, hash_secret(token), LOGIN_TOKEN, made)
            self._throttle.succeeded(connection, attempt, made, found.user_id)
            return token

    def revoke_token(self, token: str) -> None:
        """Make a bearer token unusable (signing out of the web UI)."""
        with write_transaction(self._engine) as connection:
            TokenStore(connection).delete_by_hash(hash_secret(token))

    def user_for_token(self, token: str) -> User | None:
        """The user a bearer token belongs to; None for an unknown, expired or revoked token,
        a token of a disabled person, and a sign-in token (:meth:`login`) older than the login
        lifetime now."""
        now = self._clock.now()
        with read_transaction(self._engine) as connection:
            found = TokenStore(connection).find(hash_secret(token))
            if found is None or found.owner_disabled:
                return None
            if found.expires_at is not None and found.expires_at <= now:
                return None
            if found.name == LOGIN_TOKEN and found.created_at + self._login_lifetime <= now:
                return None
            return UserStore(connection).get(found.user_id)

    def _audit(
        self,
        connection: Connection,
        actor: str,
        action: str,
        user_id: int,
        detail: Mapping[str, object],
        project_id: int | None = None,
        *,
        target: int | None = None,
        at: datetime | None = None,
    ) -> None:
        """One audit entry by ``actor`` (the CLI, for now) about person ``user_id``, or about
        token ``target`` of theirs."""
        AuditStore(connection).record(
            project_id=project_id,
            user_id=None,
            actor=actor,
            action=action,
            target=f"token:{target}" if target is not None else f"user:{user_id}",
            detail={**detail, "user_id": user_id} if target is not None else dict(detail),
            at=at or self._clock.now(),
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
