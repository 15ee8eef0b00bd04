"""The catalogue: relays, experiments and their streams, UIs, pools with policies, groups."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]*$", "Use lower-case letters, digits, - and _."
)
topic_validator = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", "Use letters, digits, - and _.")


class Relay(models.Model):
    """A websocket relay (e.g. a practable relay) that carries experiments' streams."""

    class Algorithm(models.TextChoices):
        HS256 = "HS256", "HS256 (shared secret, practable relay)"
        EDDSA = "EdDSA", "EdDSA (our JWKS)"
        ES256 = "ES256", "ES256 (our JWKS)"

    slug = models.SlugField(max_length=64, unique=True, validators=[slug_validator])
    access_url = models.URLField(max_length=300, help_text="e.g. https://relay.example.org/access")
    audience = models.CharField(
        max_length=300, blank=True, help_text="The token's aud; empty means the access URL."
    )
    algorithm = models.CharField(max_length=8, choices=Algorithm.choices, default=Algorithm.HS256)
    secret_env = models.CharField(
        max_length=128, blank=True, help_text="Environment variable holding the HS256 secret."
    )
    secret_file = models.CharField(
        max_length=500, blank=True, help_text="File holding the HS256 secret (read at signing)."
    )
    push_enabled = models.BooleanField(
        default=True, help_text="Push revocations to the relay's /bids/deny."
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def effective_audience(self) -> str:
        return self.audience or self.access_url


class Experiment(models.Model):
    """One physical kit item, booked exclusively."""

    slug = models.SlugField(max_length=64, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    topic_stub = models.CharField(max_length=100, validators=[topic_validator])
    public = models.BooleanField(
        default=True, help_text="Hidden experiments can be booked only by their maintainers."
    )
    available = models.BooleanField(default=True)
    unavailable_reason = models.CharField(max_length=300, blank=True)
    maintainers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="maintained_experiments"
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Stream(models.Model):
    """One stream of an experiment (data, video, ...) on a relay."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="streams")
    name = models.CharField(max_length=64, validators=[topic_validator])
    relay = models.ForeignKey(Relay, on_delete=models.PROTECT, related_name="streams")
    scopes = models.JSONField(default=list)

    class Meta:
        ordering = ["experiment", "name"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="stream_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.experiment.slug}/{self.name}"

    @property
    def topic(self) -> str:
        return f"{self.experiment.topic_stub}-{self.name}"


class UI(models.Model):
    """A web UI for an experiment; its URL is a template ({{session}}, {{streams}}, {{exp}})."""

    slug = models.SlugField(max_length=64, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200)
    url = models.CharField(max_length=1000)
    streams = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = "UI"

    def __str__(self) -> str:
        return self.slug


class UISet(models.Model):
    slug = models.SlugField(max_length=64, unique=True, validators=[slug_validator])
    uis = models.ManyToManyField(UI, blank=True, related_name="ui_sets")

    class Meta:
        ordering = ["slug"]
        verbose_name = "UI set"

    def __str__(self) -> str:
        return self.slug


class Pool(models.Model):
    """A bookable set of experiments under one policy. Durations are whole seconds."""

    slug = models.SlugField(max_length=64, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    experiments = models.ManyToManyField(Experiment, blank=True, related_name="pools")
    ui_set = models.ForeignKey(UISet, null=True, blank=True, on_delete=models.SET_NULL)

    min_duration = models.PositiveIntegerField(default=5 * 60)
    max_duration = models.PositiveIntegerField(default=60 * 60)
    book_ahead = models.PositiveIntegerField(default=7 * 86400)
    start_in_past = models.PositiveIntegerField(default=2 * 60)
    max_bookings = models.PositiveIntegerField(default=2)
    quota_period = models.PositiveIntegerField(null=True, blank=True)
    quota_limit = models.PositiveIntegerField(null=True, blank=True)
    grace_period = models.PositiveIntegerField(default=10 * 60)
    extend_step = models.PositiveIntegerField(default=5 * 60)
    max_extension = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_duration__lte=models.F("max_duration")),
                name="pool_min_le_max_duration",
            ),
            models.CheckConstraint(
                condition=models.Q(extend_step__gte=60), name="pool_extend_step_min_1m"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class WindowKind(models.TextChoices):
    ALLOWED = "allowed", "allowed"
    DENIED = "denied", "denied"


class Window(models.Model):
    """An allowed period (course) or a denied one (maintenance) of a pool, [start, end)."""

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="windows")
    kind = models.CharField(max_length=8, choices=WindowKind.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()

    class Meta:
        ordering = ["pool", "kind", "start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="window_end_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.pool.slug} {self.kind} {self.start:%Y-%m-%d %H:%M}–{self.end:%Y-%m-%d %H:%M}"


class Group(models.Model):
    """A cohort; membership grants booking rights in the group's pools."""

    slug = models.SlugField(max_length=64, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200)
    pools = models.ManyToManyField(Pool, blank=True, related_name="groups")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="lab_groups"
    )
    ui_set = models.ForeignKey(
        UISet, null=True, blank=True, on_delete=models.SET_NULL, help_text="Overrides the pool's."
    )
    # Only a hash of the access code is kept; the code is shown once when it is made.
    access_code_hash = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    access_code_expires_at = models.DateTimeField(null=True, blank=True)
    access_code_max_uses = models.PositiveIntegerField(null=True, blank=True)
    access_code_uses = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug
