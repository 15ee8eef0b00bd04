"""The students' pages keep one thing of their own: each user's private calendar feed."""

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class CalendarFeed(models.Model):
    """A user's iCalendar feed address. The token in it is derived from the secret key and
    `salt` (so the page can show it again) and looked up by its SHA-256 hash; a new salt
    makes a new address and the old one stops working."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feed"
    )
    salt = models.CharField(max_length=64)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"calendar feed of user {self.user_id}"


class LoginSession(AbstractBaseSession):
    """A login session (Django's database sessions) with its user beside it, so that one
    query reads both on every request (`web.login_sessions`). Deleting a user deletes
    their sessions."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.CASCADE,
        db_constraint=False,  # a session may outlive the request that deleted its user
        related_name="+",
    )

    class Meta:
        verbose_name = "login session"

    @classmethod
    def get_session_store_class(cls) -> type:
        from web.login_sessions import SessionStore

        return SessionStore
