"""The students' pages, at the root of the site."""

from django.urls import path

from web.views import bookings, join, lookup, pages, session

app_name = "web"

urlpatterns = [
    path("", pages.home, name="home"),
    path("join/", join.join_form, name="join"),
    path("join/<str:code>/", join.join_code, name="join-code"),
    path("join/<str:code>/guest/", join.join_guest, name="join-guest"),
    path("pools/<slug:slug>/", pages.pool_detail, name="pool"),
    path("bookings/", bookings.my_bookings, name="bookings"),
    path("bookings/lookup/", lookup.booking_lookup, name="lookup"),
    path("bookings/<uuid:booking_id>.ics", bookings.booking_ics, name="booking-ics"),
    path("calendar/new/", bookings.calendar_feed_new, name="calendar-feed-new"),
    path("calendar/<str:token>.ics", bookings.calendar_feed, name="calendar-feed"),
    path("session/", session.session_page, name="session"),
]
