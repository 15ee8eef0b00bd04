from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from booking import apis as booking_apis
from messaging import apis as messaging_apis
from relay_control.views import revocation_feed
from sessions_app.views import jwks_view
from workflows import apis as workflow_apis

admin.site.site_header = "Remote lab administration"
admin.site.site_title = "Remote lab admin"

api_v1 = [
    path("pools/", booking_apis.PoolListApi.as_view()),
    path("pools/<slug:slug>/availability/", booking_apis.AvailabilityApi.as_view()),
    path("groups/join/", booking_apis.GroupJoinApi.as_view()),
    path("bookings/", booking_apis.BookingListCreateApi.as_view()),
    path("bookings/lookup/", booking_apis.BookingLookupApi.as_view()),
    path("bookings/<uuid:booking_id>/", booking_apis.BookingDetailApi.as_view()),
    path("bookings/<uuid:booking_id>/cancel/", workflow_apis.BookingCancelApi.as_view()),
    path("bookings/<uuid:booking_id>/extend/", workflow_apis.BookingExtendApi.as_view()),
    path("bookings/<uuid:booking_id>/session/", workflow_apis.BookingSessionApi.as_view()),
    path("session/", workflow_apis.SessionApi.as_view()),
    path("session/cancel/", workflow_apis.SessionCancelApi.as_view()),
    path("session/extend/", workflow_apis.SessionExtendApi.as_view()),
    path("session/subset/", workflow_apis.SessionSubsetApi.as_view()),
    path("session/events/", messaging_apis.SessionEventsApi.as_view()),
    path("session/survey/", messaging_apis.SessionSurveyApi.as_view()),
    path("relay/revocations/", revocation_feed, name="revocation-feed"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include(api_v1)),
    path(".well-known/jwks.json", jwks_view, name="jwks"),
    path("", include("web.urls")),
]

handler400 = "config.errors.bad_request"
handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
