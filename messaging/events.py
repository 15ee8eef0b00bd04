"""The websocket event payloads, declared once. Every event has "type" and "seq"."""

from typing import Literal, TypedDict


class Ready(TypedDict):
    type: Literal["ready"]
    seq: int


class SessionExtended(TypedDict):
    type: Literal["session.extended"]
    seq: int
    end: str
    streams: list[dict]


class SessionCancelled(TypedDict):
    type: Literal["session.cancelled"]
    seq: int
    reason: str
    by: Literal["user", "staff", "system"]


class SessionEnding(TypedDict):
    type: Literal["session.ending"]
    seq: int
    seconds_left: int


class SessionEnded(TypedDict):
    type: Literal["session.ended"]
    seq: int


class MessageEvent(TypedDict):
    type: Literal["message"]
    seq: int
    id: int
    level: str
    text: str
    # "from" is a keyword; the payload key is added as "from" when the event is built.


class Survey(TypedDict):
    type: Literal["survey"]
    seq: int
    url: str


SESSION_EXTENDED = "session.extended"
SESSION_CANCELLED = "session.cancelled"
SESSION_ENDING = "session.ending"
SESSION_ENDED = "session.ended"
MESSAGE = "message"
SURVEY = "survey"
BOOKING_CHANGED = "booking.changed"

CLOSE_UNAUTHORISED = 4401
CLOSE_OVER = 4410
