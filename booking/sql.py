"""The hand-written statements of the booking hot path (no Django imports, so the
benchmark's raw-SQL floor runs exactly these)."""

from datetime import UTC, datetime, timedelta

# One round trip for everything booking_create needs from the catalogue: the pool and its
# policy, membership, whether it has windows, and the candidate experiments with the user's
# maintainer flag. Written by hand because it is the hottest read of the platform.
# On PostgreSQL {lock} is LOCK_USER_SQL: the same statement first locks the user's row, which
# serialises one user's bookings (max_bookings, quota) before their bookings are read. On
# SQLite the IMMEDIATE transaction already holds the database's write lock.
CATALOGUE_SQL = """
{lock}SELECT p.id, p.slug, p.title, p.min_duration, p.max_duration, p.book_ahead, p.start_in_past,
       p.max_bookings, p.grace_period, p.extend_step, p.max_extension, p.quota_period,
       p.quota_limit,
       EXISTS (SELECT 1 FROM booking_group_pools gp
               JOIN booking_group_members gm ON gm.group_id = gp.group_id
               WHERE gp.pool_id = p.id AND gm.user_id = %s),
       EXISTS (SELECT 1 FROM booking_window w WHERE w.pool_id = p.id),
       x.id, x.slug, x.title, x.public, x.available,
       EXISTS (SELECT 1 FROM booking_experiment_maintainers m
               WHERE m.experiment_id = x.id AND m.user_id = %s)
FROM booking_pool p {locked}
LEFT JOIN (SELECT pe.pool_id, e.id, e.slug, e.title, e.public, e.available
           FROM booking_pool_experiments pe
           JOIN booking_experiment e ON e.id = pe.experiment_id {only}) x ON x.pool_id = p.id
WHERE p.slug = %s
ORDER BY x.slug
"""
# The bookings that matter to a new booking, in one read: how many current or future
# bookings the user holds in the pool, counted by the server rather than sent row by row (a
# student with many bookings would otherwise send them all with every booking);
# then, one per row, marked `mine`, the user's bookings in the pool within the quota's period
# around the interval ({mine}: only for a pool with a quota), and the candidate experiments'
# active bookings that overlap the interval. Each row carries the count; when nothing else
# matches, one row carries it with NULLs.
AROUND_SQL = """
SELECT h.held, b.mine, b.experiment_id, b.start, b."end", b.status, b.cancelled_at
FROM (SELECT count(*) FILTER (WHERE status IN (%s, %s)) AS held FROM booking_booking
      WHERE user_id = %s AND pool_id = %s AND "end" > %s) AS h
LEFT JOIN ({mine}SELECT FALSE AS mine, experiment_id, start, "end", status, cancelled_at
           FROM booking_booking
           WHERE experiment_id IN ({marks}) AND status IN (%s, %s) AND start < %s AND "end" > %s
          ) AS b ON TRUE
"""
MINE_SQL = """SELECT TRUE AS mine, experiment_id, start, "end", status, cancelled_at
           FROM booking_booking
           WHERE user_id = %s AND pool_id = %s AND start < %s AND "end" > %s
           UNION ALL
           """
# PostgreSQL: the same read, finding the pool, its quota period and the experiments from the
# slugs the request names instead of from the catalogue read's answer. It needs nothing that
# read returns, so both go to the server together (booking_create's pipeline); it runs after
# the catalogue read has taken the user's lock, in a snapshot of its own (READ COMMITTED), so it
# sees every booking of the user committed before the lock was granted. The user's bookings
# within the quota's period are read only for a pool with a quota: `(SELECT quota FROM p)`
# gates that part of the union as a whole (a one-time filter), so a pool without a quota does
# not scan them. The overlaps are searched as the no-overlap constraint states them (active
# bookings, the experiment, the time range), so its index answers with the few that overlap.
# With the times as plain comparisons, a plan made from statistics that counted few active
# bookings (a lab's history, between two analyses of a busy day) went through the (status,
# start) index or the constraint's index read whole: every active booking, for each booking.
# The user's count leaves the statuses out of its WHERE for the same reason: no index of
# active bookings only fits it, and the (user, end) ones do. booking_create runs this with
# its generic plan (GENERIC_PLANS below).
# Parameters: pool slug, user, now (the count), user, the interval's end and start (quota),
# [experiment slug], the interval's start and end (the experiments' overlaps).
AROUND_BY_SLUG_SQL = """
WITH p AS (SELECT id, quota_period > 0 AS quota,
                  make_interval(secs => coalesce(quota_period, 0)) AS span
           FROM booking_pool WHERE slug = %s)
SELECT h.held, b.mine, b.experiment_id, b.start, b."end", b.status, b.cancelled_at
FROM (SELECT count(*) FILTER (WHERE status IN ({active})) AS held FROM booking_booking
      WHERE user_id = %s AND pool_id = (SELECT id FROM p) AND "end" > %s) AS h
LEFT JOIN (SELECT TRUE AS mine, experiment_id, start, "end", status, cancelled_at
           FROM booking_booking
           WHERE user_id = %s AND pool_id = (SELECT id FROM p) AND (SELECT quota FROM p)
                 AND start < %s::timestamptz + (SELECT span FROM p)
                 AND "end" > %s::timestamptz - (SELECT span FROM p)
           UNION ALL
           SELECT FALSE, experiment_id, start, "end", status, cancelled_at
           FROM booking_booking
           WHERE experiment_id {experiments}
                 AND status IN ({active})
                 AND tstzrange(start, "end", '[)') && tstzrange(%s, %s, '[)')) AS b ON TRUE
"""
# The experiments of AROUND_BY_SLUG_SQL's overlaps: the one named (a scalar, so that the
# constraint's index searches on both the experiment and the time), or all the pool's.
ONE_EXPERIMENT_SQL = """= (SELECT pe.experiment_id FROM booking_pool_experiments pe
                 JOIN booking_experiment e ON e.id = pe.experiment_id AND e.slug = %s
                 WHERE pe.pool_id = (SELECT id FROM p))"""
POOL_EXPERIMENTS_SQL = """= ANY (ARRAY(SELECT pe.experiment_id FROM booking_pool_experiments pe
                 WHERE pe.pool_id = (SELECT id FROM p)))"""
# Sent first in booking_create's transaction on PostgreSQL (its pipeline; the benchmark's
# floor sends it the same way). The prepared statements that follow (config/settings/env.py)
# then run with the plans PostgreSQL made for them once (generic plans), never planned again
# for each booking's values (custom plans). PostgreSQL chooses by comparing the plans'
# estimated costs: with a lab's history in the statistics, a booking's values (its times,
# now) make a custom plan look cheaper than the generic one, and it then planned the read of
# the bookings around anew for every booking, about 0.6 ms of its CPU. These statements look
# up a few rows by index whatever the values: the generic plan is as good.
GENERIC_PLANS = b"SET LOCAL plan_cache_mode = force_generic_plan"
# Serialises one user's bookings on PostgreSQL: alone (extending), or inside the catalogue
# read (booking). NO KEY UPDATE conflicts with itself but not with the FOR KEY SHARE that
# other transactions take on the row at their commit, for the rows they wrote that point at
# the user (a message to the student, an audit entry): a booking waiting for its turn or for
# the experiment's row never holds those up.
USER_LOCK_SQL = "SELECT id FROM auth_user WHERE id = %s FOR NO KEY UPDATE"
LOCK_USER_SQL = f"WITH me AS ({USER_LOCK_SQL})\n"
LOCKED_SQL = "JOIN me ON TRUE"
INSERT_TEMPLATE = """
INSERT INTO booking_booking (id, reference, user_id, pool_id, experiment_id, start, "end",
    booked_end, status, created_at, started_at, cancelled_at, cancelled_by_id, cancel_reason)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, NULL, NULL, {reason})
"""

# Turns on an experiment's slots (PostgreSQL). Two overlapping bookings of one experiment
# written at the same moment each find the other's uncommitted row through the exclusion
# constraint and wait for each other; PostgreSQL breaks that deadlock only after
# deadlock_timeout (1 s), failing one of them with a deadlock error instead of a violation. So
# every write of an experiment's slots first takes its turn, advisory locks held to the end of
# the transaction: overlapping writes follow one another, and the loser of a race meets the
# winner's committed row, a plain violation (409), at once.
#
# The turn is on the time the write covers, not the whole experiment: the experiment's time is
# cut into spans of SLOT_SPAN seconds and a write locks each span its interval touches, in
# ascending order. Two intervals that overlap share the span of any instant they share, so
# they still follow one another; writes to other hours of the same experiment (bookings of the
# same kit made at the same moment, usually for different times) do not wait. A write touching
# more than MAX_SPANS spans takes the whole experiment's turn instead (an exclusive lock on the
# experiment), which every span writer holds shared, and always first: so no cycle of waits.
# Span locks use the one-bigint form, (experiment << 32) + span (pg_locks: classid =
# experiment, objid = span, objsubid = 1, for times after 1970); the experiment's lock the
# two-integer form (classid = SLOTS_LOCK_CLASS, objid = experiment, objsubid = 2). The two
# forms never collide, and nothing else here takes one-bigint advisory locks. Experiment ids
# past 2**31 fold onto smaller ones (the keys are 32-bit): two experiments then share their
# turns, which can only cost waiting.
SLOTS_LOCK_CLASS = 0x6C62  # the experiment lock's first key: "an experiment's slots"
SLOT_SPAN = 300  # seconds of an experiment's time under one span lock
MAX_SPANS = 48  # 4 hours of spans: a write touching more takes the whole experiment's turn
EXPERIMENT_TURN_SQL = f"SELECT pg_advisory_xact_lock({SLOTS_LOCK_CLASS}, %s)"
# The experiment's lock, shared, then the spans': generate_series depends on the shared lock's
# result (an empty string), so PostgreSQL must take that lock before the first span's.
# Parameters: experiment, experiment, first span, last span.
SPANS_TURN_SQL = f"""SELECT count(pg_advisory_xact_lock((%s::bigint << 32) + span.n))
FROM (SELECT pg_advisory_xact_lock_shared({SLOTS_LOCK_CLASS}, %s)::text AS held) AS experiment,
     generate_series(%s::bigint, %s::bigint + length(experiment.held)) AS span(n)"""  # noqa: S608 - constants only
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SPAN = timedelta(seconds=SLOT_SPAN)


def slots_turn(experiment_id: int, start: datetime, end: datetime) -> tuple[str, list[int]]:
    """The statement (and its parameters) that takes the turn for writing [start, end) of an
    experiment's time: its spans, or the whole experiment for a long interval."""
    key = experiment_id & 0x7FFFFFFF
    first = (start - _EPOCH) // _SPAN
    last = -((_EPOCH - end) // _SPAN) - 1  # the span holding the last instant before `end`
    if last - first + 1 > MAX_SPANS:
        return EXPERIMENT_TURN_SQL, [key]
    return SPANS_TURN_SQL, [key, key, first, last]


INSERT_SQL = INSERT_TEMPLATE.format(reason="''")


# The insert for each turn statement slots_turn returns (PostgreSQL). It takes the turn
# itself (no extra round trip) before the row exists, so the locks are held before the
# constraint is checked. Then, in the turn, it locks the experiment's row FOR SHARE and
# inserts only if the experiment is still available (or the booker maintains it): an action
# that takes the experiment out of service updates that row, so it waits for a booking that
# holds the lock and then finds its row, and a booking that comes second waits for the action
# and, in READ COMMITTED, checks the row as the action committed it (no row: nothing
# inserted, cursor.rowcount 0). The catalogue read earlier in the transaction cannot do this:
# its snapshot predates any wait. The lock replaces the FOR KEY SHARE the booking's foreign
# key check would take on the row at the commit. The lateral subquery reads the turn's
# column, so the turn comes first. A row the constraints refuse (an overlapping booking that
# committed first, whose row the turn makes the loser of a race meet at once; a reference
# already in use) is not inserted either, instead of failing the statement: booking_create
# sends COMMIT with the insert (its pipeline), and a failed statement would make PostgreSQL
# skip the COMMIT. No row inserted: booking_create tries again, and that read says why.
# Parameters: INSERT_SQL's, the turn's, then the experiment and whether the booker maintains
# it.
INSERT_IN_TURN_TEMPLATE = """
INSERT INTO booking_booking (id, reference, user_id, pool_id, experiment_id, start, "end",
    booked_end, status, created_at, started_at, cancelled_at, cancelled_by_id, cancel_reason)
SELECT %s::uuid, %s, %s, %s, %s, %s::timestamptz, %s::timestamptz, %s::timestamptz, %s,
       %s::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::integer, ''
FROM (SELECT '' AS held FROM ({turn}) AS taken) AS turn,
     LATERAL (SELECT e.id FROM booking_experiment e
              WHERE e.id = %s AND (e.available OR %s) AND turn.held = ''
              FOR SHARE OF e) AS open
ON CONFLICT DO NOTHING
"""
INSERT_IN_TURN_SQL = {
    turn: INSERT_IN_TURN_TEMPLATE.format(turn=turn)  # noqa: S608 - constants only
    for turn in (SPANS_TURN_SQL, EXPERIMENT_TURN_SQL)
}


# Actions that change whether experiments are in service take this turn first, one at a
# time (PostgreSQL). Taking one experiment out of service can move its bookings onto another.
# Two such actions at once could each move bookings onto the other's experiment and then wait
# for the other's row, or the second could miss a booking the first was moving onto its
# experiment (not committed when it looked).
SERVICE_LOCK_CLASS = 0x6C73  # the first key: "the lab's service state"
SERVICE_TURN_SQL = f"SELECT pg_advisory_xact_lock({SERVICE_LOCK_CLASS}, 0)"
# Whether an experiment is in service, read under a lock that an action taking it out of
# service waits for (and that waits for such an action, then reads its result).
EXPERIMENT_IN_SERVICE_SQL = "SELECT available FROM booking_experiment WHERE id = %s FOR SHARE"


def catalogue_sql(*, lock: bool, one_experiment: bool) -> str:
    """CATALOGUE_SQL with the user lock (PostgreSQL) or without, for one experiment or all
    the pool's. Parameters: [user (lock)], user, user, [experiment slug], pool slug."""
    return CATALOGUE_SQL.format(
        lock=LOCK_USER_SQL if lock else "",
        locked=LOCKED_SQL if lock else "",
        only="WHERE e.slug = %s" if one_experiment else "",
    )


def around_by_slug_sql(*, active: tuple[str, ...], one_experiment: bool) -> str:
    """AROUND_BY_SLUG_SQL for the active statuses (constants, written in), for one experiment
    or all the pool's."""
    return AROUND_BY_SLUG_SQL.format(
        active=", ".join(f"'{status}'" for status in active),
        experiments=ONE_EXPERIMENT_SQL if one_experiment else POOL_EXPERIMENTS_SQL,
    )
