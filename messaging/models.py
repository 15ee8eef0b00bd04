"""Events for browsers (per session and per user, each with its own increasing seq),
staff messages, and survey answers."""

from django.conf import settings
from django.db import models

from booking.models import Experiment, Pool
from sessions_app.models import Session


class SessionChannel(models.Model):
    """Per-session event counter, and which timed warnings were sent."""

    session = models.OneToOneField(Session, on_delete=models.CASCADE, related_name="channel")
    last_seq = models.PositiveIntegerField(default=0)
    warned = models.JSONField(default=list, blank=True)
    ended_sent = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"channel of {self.session_id} at {self.last_seq}"


class SessionEvent(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=32)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["session", "seq"]
        constraints = [models.UniqueConstraint(fields=["session", "seq"], name="session_event_seq")]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq}"


class UserChannel(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="event_channel"
    )
    last_seq = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"channel of user {self.user_id} at {self.last_seq}"


class UserEvent(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=32)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["user", "seq"]
        constraints = [models.UniqueConstraint(fields=["user", "seq"], name="user_event_seq")]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq}"


class Message(models.Model):
    """A staff message, kept after delivery; `target` says who it was for."""

    class Level(models.TextChoices):
        INFO = "info", "info"
        WARNING = "warning", "warning"
        URGENT = "urgent", "urgent"

    class Target(models.TextChoices):
        SESSION = "session", "one session"
        USER = "user", "one user"
        POOL = "pool", "everyone with a current session in a pool"
        EXPERIMENT = "experiment", "everyone with a current session on an experiment"
        EVERYONE = "everyone", "everyone with a current session"

    target = models.CharField(max_length=12, choices=Target.choices)
    session = models.ForeignKey(Session, null=True, blank=True, on_delete=models.SET_NULL)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pool = models.ForeignKey(Pool, null=True, blank=True, on_delete=models.SET_NULL)
    experiment = models.ForeignKey(Experiment, null=True, blank=True, on_delete=models.SET_NULL)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    text = models.TextField(max_length=2000)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    recipients = models.PositiveIntegerField(default=0, help_text="Sessions and users reached.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_target_display()}: {self.text[:40]}"


class SurveyResponse(models.Model):
    """An answer sent after a session (a survey or an attendance record)."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="survey_responses")
    submitted_at = models.DateTimeField()
    answers = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"survey of {self.session_id} at {self.submitted_at:%Y-%m-%d %H:%M}"
