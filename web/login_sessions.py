"""Login sessions read together with their user: one query per request instead of two.

`SESSION_ENGINE = "web.login_sessions"` keeps Django's database sessions (expiry, key
rotation, `clearsessions`) in `web.LoginSession`, which also stores the user's id. Loading a
session joins the user row; `SessionUserBackend.get_user` takes that row instead of reading
it again. Everything else `django.contrib.auth.get_user` does (the backend must be
configured, the user active, the session's password hash valid) is unchanged.

On PostgreSQL a web process remembers the row between requests until PostgreSQL notifies a
change to the session or the user (`web.login_cache`); each request still checks the user
as above. A process decodes each session text once (`SessionStore.decode`).
"""

from contextvars import ContextVar
from datetime import datetime
from functools import cache

from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth import get_user as auth_get_user
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.db import connections, router
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from web.login_cache import Remembered, login_cache, remembered_in

_READ_WITH_SESSION: ContextVar = ContextVar("user_read_with_session", default=None)

# Session texts decoded in this process, and their data (SessionStore.decode); in memory only.
DECODED_SIZE = 2000  # texts at most; when full, all are forgotten
_DECODED: dict[str, dict] = {}
_PLAIN = frozenset({str, int, float, bool, type(None)})


class SessionStore(DBStore):
    user_row = None  # the session's user as read with it (None: none, or not read yet)

    @classmethod
    def get_model_class(cls) -> type:
        from web.models import LoginSession

        return LoginSession

    def _get_session_from_db(self):  # noqa: ANN202 - Django's signature
        connection = connections[router.db_for_read(self.model)]
        sql, fields = _session_statement(connection.alias)
        now = timezone.now()
        memory = None if connection.in_atomic_block else login_cache(connection.alias)
        if memory is not None:
            known = memory.get(self.session_key, now)
            if known is not None:
                self.user_row = _user(connection.alias, fields, known.user_values)
                return self.model(session_key=self.session_key, session_data=known.session_data)
            epoch = memory.epoch
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.session_key, connection.ops.adapt_datetimefield_value(now)])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        session_data, expire_date, *user = row
        if user[0] is not None:
            values = tuple(
                _converted(value, col, converters, connection)
                for value, (col, converters) in zip(user, fields, strict=True)
            )
            self.user_row = _user(connection.alias, fields, values)
            if memory is not None:
                expire_date = _converted(expire_date, *_expiry(connection.alias), connection)
                known = Remembered(
                    session_data, expire_date, self.user_row.pk, values, memory.clock()
                )
                memory.put(self.session_key, known, epoch)
        return self.model(session_key=self.session_key, session_data=session_data)

    def decode(self, session_data: str) -> dict:
        """Django's decode (the signature checked, the data parsed), once per session text in
        this process: the same text always decodes to the same data (signed with the
        process's keys, no age limit), and a login's text stays the same from one request to
        the next. Each request gets a copy of its own. Data holding anything but plain values
        (which a copy would share between requests), and text that does not decode, are
        decoded each time, as by Django."""
        known = _DECODED.get(session_data)
        if known is not None:
            return dict(known)
        data = super().decode(session_data)
        if data and all(type(value) in _PLAIN for value in data.values()):
            if len(_DECODED) >= DECODED_SIZE:
                _DECODED.clear()
            _DECODED[session_data] = data
            return dict(data)
        return data

    # Writes through this store forget the session in this process at once; other processes
    # hear of them from PostgreSQL (web.login_cache).
    def save(self, must_create: bool = False) -> None:
        self._forget(self.session_key)
        super().save(must_create=must_create)

    def delete(self, session_key: str | None = None) -> None:
        self._forget(session_key if session_key is not None else self.session_key)
        super().delete(session_key)

    def _forget(self, session_key: str | None) -> None:
        memory = remembered_in(router.db_for_write(self.model))
        if memory is not None and session_key:
            memory.forget_session(session_key)

    def create_model_instance(self, data: dict):  # noqa: ANN201 - Django's signature
        row = super().create_model_instance(data)
        try:
            row.user_id = int(data.get(SESSION_KEY))
        except (TypeError, ValueError):
            row.user_id = None
        return row


@cache
def _session_statement(alias: str) -> tuple[str, list]:
    """The statement reading a session and its user (the user's columns after the data),
    and for each user column the converters the ORM would apply."""
    connection = connections[alias]
    User = get_user_model()  # noqa: N806 - a model class
    table = User._meta.db_table
    fields = []
    for field in User._meta.concrete_fields:
        col = field.get_col(table)
        converters = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        fields.append((col, converters))
    quote = connection.ops.quote_name
    columns = ", ".join(f"u.{quote(col.target.column)}" for col, _ in fields)
    pk = quote(User._meta.pk.column)
    # Only names from the model's metadata go in; the key and the time are parameters.
    sql = (
        f"SELECT s.session_data, s.expire_date, {columns} "  # noqa: S608
        f"FROM {quote(SessionStore.get_model_class()._meta.db_table)} s "
        f"LEFT JOIN {quote(table)} u ON u.{pk} = s.user_id "
        "WHERE s.session_key = %s AND s.expire_date > %s"
    )
    return sql, fields


@cache
def _expiry(alias: str) -> tuple[object, list]:
    """The session's expiry column, and the converters the ORM would apply to it."""
    connection = connections[alias]
    model = SessionStore.get_model_class()
    col = model._meta.get_field("expire_date").get_col(model._meta.db_table)
    return col, connection.ops.get_db_converters(col) + col.get_db_converters(connection)


def _user(alias: str, fields: list, values: tuple):  # noqa: ANN202 - the user model
    """A user object of its own for this request, from the columns' values."""
    return get_user_model().from_db(alias, [col.target.attname for col, _ in fields], list(values))


def _converted(value: object, col: object, converters: list, connection: object) -> object:
    for converter in converters:
        value = converter(value, col, connection)
    return value


class SessionUserBackend(ModelBackend):
    """Django's model backend, taking the user read with the session when it is the one
    the session names."""

    def get_user(self, user_id: object):  # noqa: ANN201 - Django's signature
        user = _READ_WITH_SESSION.get()
        if user is not None and str(user.pk) == str(user_id):
            return user if self.user_can_authenticate(user) else None
        return super().get_user(user_id)


def get_user(request: HttpRequest):  # noqa: ANN201 - a user or AnonymousUser
    if not hasattr(request, "_cached_user"):
        session = request.session
        session.get(SESSION_KEY)  # loads the session, and its user with it
        token = _READ_WITH_SESSION.set(getattr(session, "user_row", None))
        try:
            request._cached_user = auth_get_user(request)
        finally:
            _READ_WITH_SESSION.reset(token)
    return request._cached_user


class SessionUserMiddleware(AuthenticationMiddleware):
    """AuthenticationMiddleware whose `request.user` uses the user read with the session."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: get_user(request))


def login_sessions_purge(*, now: datetime) -> int:
    """Delete expired login sessions (the periodic sweep); how many went."""
    from web.models import LoginSession

    deleted, _ = LoginSession.objects.filter(expire_date__lte=now).delete()
    return deleted
