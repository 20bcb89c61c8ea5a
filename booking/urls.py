"""The channels' REST API, `/api/v1/…` (CONTRACT.md section 1); OpenAPI at /api/schema/, docs at /api/docs/."""

from django.urls import path, re_path

from booking.api import views

ORDER_NO = r"(?P<order_no>[A-Za-z0-9_-]{1,32})"

urlpatterns = [
    path("api/v1/hospitals/", views.HospitalList.as_view(), name="api-hospitals"),
    path("api/v1/hospitals/<str:hospital_no>/departments/", views.DepartmentList.as_view(), name="api-departments"),
    path("api/v1/doctors/", views.DoctorList.as_view(), name="api-doctors"),
    path("api/v1/schedules/", views.ScheduleList.as_view(), name="api-schedules"),
    path("api/v1/schedules/<int:schedule_id>/", views.ScheduleDetail.as_view(), name="api-schedule"),
    path("api/v1/schedules/<int:schedule_id>/slots/", views.ScheduleSlots.as_view(), name="api-schedule-slots"),
    path("api/v1/schedules/<int:schedule_id>/queue/", views.ScheduleQueue.as_view(), name="api-schedule-queue"),
    # The waitlist answers with or without a trailing slash (the issue writes it without).
    re_path(
        r"^api/v1/schedules/(?P<schedule_id>[0-9]+)/waitlist/?$", views.ScheduleWaitlist.as_view(), name="api-waitlist"
    ),
    re_path(
        r"^api/v1/schedules/(?P<schedule_id>[0-9]+)/waitlist/(?P<entry_id>[0-9]+)/?$",
        views.ScheduleWaitlistEntry.as_view(),
        name="api-waitlist-entry",
    ),
    path("api/v1/cards/check/", views.CardCheck.as_view(), name="api-card-check"),
    path("api/v1/cards/", views.CardList.as_view(), name="api-cards"),
    path("api/v1/orders/", views.OrderListCreate.as_view(), name="api-orders"),
    path("api/v1/orders/search/", views.OrderSearch.as_view(), name="api-order-search"),
    # The order actions answer with or without a trailing slash (the issue writes them without).
    re_path(rf"^api/v1/orders/{ORDER_NO}/pay/?$", views.OrderPay.as_view(), name="api-order-pay"),
    re_path(rf"^api/v1/orders/{ORDER_NO}/cancel/?$", views.OrderCancel.as_view(), name="api-order-cancel"),
    re_path(rf"^api/v1/orders/{ORDER_NO}/?$", views.OrderDetail.as_view(), name="api-order"),
    # Last, after the schema and docs of the project's URLs: anything else under /api/ is a JSON 404.
    re_path(r"^api/(?P<path>.*)$", views.api_not_found, name="api-not-found"),
]
