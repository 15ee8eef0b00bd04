"""The students' pages keep one thing of their own: each user's private calendar feed."""

from django.conf import settings
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
