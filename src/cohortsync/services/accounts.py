"""People who sign in: creating them, their roles, their bearer tokens and signing in."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from cohortsync.clock import Clock
from cohortsync.credentials import hash_password, hash_secret, new_secret, verify_password
from cohortsync.domain.accounts import Role, User
from cohortsync.domain.errors import AuthenticationError, Conflict, NotFound
from cohortsync.storage.database import read_transaction, write_transaction
from cohortsync.storage.project_store import ProjectStore
from cohortsync.storage.user_store import UserStore

TOKEN_PREFIX = "cst_"
# Tokens handed out by signing in (web sessions, POST /api/v1/login) expire; tokens an operator
# makes (`cohortsync tokens create`) are meant for scripts and do not.
LOGIN_TOKEN = "login"
DEFAULT_LOGIN_LIFETIME = timedelta(hours=12)


def _email(email: str) -> str:
    return email.strip().lower()


def _issue_token(store: UserStore, user_id: int, name: str, now: datetime) -> str:
    token = new_secret(TOKEN_PREFIX)
    store.insert_token(user_id, hash_secret(token), name, now)
    return token


class AccountService:
    """People and their tokens, each operation in its own transaction. Sign-in tokens expire
    ``login_lifetime`` after they were made."""

    def __init__(
        self, engine: Engine, clock: Clock, login_lifetime: timedelta = DEFAULT_LOGIN_LIFETIME
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._login_lifetime = login_lifetime

    def create_user(self, email: str, password: str, role: Role, project_id: int) -> User:
        """A person with a password and a role in one project (added to it if they exist)."""
        if len(password) < 8:
            raise Conflict("a password needs at least 8 characters")
        hashed = hash_password(password)  # slow on purpose: not while holding the write lock
        with write_transaction(self._engine) as connection:
            ProjectStore(connection).get(project_id)
            store = UserStore(connection)
            email = _email(email)
            user_id = store.id_by_email(email)
            if user_id is None:
                user_id = store.insert(email, hashed, self._clock.now())
            else:
                store.set_password_hash(user_id, hashed)
            store.set_role(user_id, project_id, role)
            return store.get(user_id)

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

    def create_token(self, email: str, name: str = "cli") -> str:
        """A new bearer token for the user with ``email``; returned once, stored hashed."""
        with write_transaction(self._engine) as connection:
            store = UserStore(connection)
            user_id = store.id_by_email(_email(email))
            if user_id is None:
                raise NotFound(
                    f"no user with email {email!r}; create one with `cohortsync users create`"
                )
            return _issue_token(store, user_id, name, self._clock.now())

    def login(self, email: str, password: str) -> str:
        """Check a password and hand out a sign-in token (it expires after the login lifetime;
        see :meth:`user_for_token`). The person's expired sign-in tokens are deleted."""
        with read_transaction(self._engine) as connection:
            found = UserStore(connection).password_hash(_email(email))
        if found is None or not verify_password(password, found[1]):
            raise AuthenticationError("email or password is wrong")
        made = self._clock.now()
        with write_transaction(self._engine) as connection:
            store = UserStore(connection)
            store.delete_tokens_made_by(found[0], LOGIN_TOKEN, made - self._login_lifetime)
            return _issue_token(store, found[0], LOGIN_TOKEN, made)

    def revoke_token(self, token: str) -> None:
        """Make a bearer token unusable (signing out of the web UI)."""
        with write_transaction(self._engine) as connection:
            UserStore(connection).delete_token(hash_secret(token))

    def user_for_token(self, token: str) -> User | None:
        """The user a bearer token belongs to; None for an unknown token, and for a sign-in
        token (:meth:`login`) older than the login lifetime now."""
        with read_transaction(self._engine) as connection:
            store = UserStore(connection)
            found = store.token(hash_secret(token))
            if found is None:
                return None
            user_id, name, made = found
            if name == LOGIN_TOKEN and made + self._login_lifetime <= self._clock.now():
                return None
            return store.get(user_id)
