"""The project's URLconf: the one place that mounts every app and the simulated partners."""

from pathlib import Path

from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from reconciliation import selectors as finance
from regional.observability import metrics_view
from regional.soap.center import center_endpoint
from regional.views import healthz, index, interface_docs
from sandbox import payments

_FAVICON = (Path(__file__).resolve().parent.parent / "regional/static/regional/favicon.ico").read_bytes()


@require_safe
def favicon(request):
    """Browsers ask for /favicon.ico on every site: served from memory in every mode (no DEBUG static
    serving, no 404 in the logs), and cached by the browser for a day."""
    response = HttpResponse(_FAVICON, content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response


admin.site.site_header = "区域医疗健康资源平台"
admin.site.site_title = "区域医疗健康资源平台"
admin.site.index_title = "平台管理"

urlpatterns = [
    path("", index, name="index"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("ws/center", center_endpoint, name="center-ws"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("interfaces/", interface_docs, name="interface-docs"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script, so the CSP holds there too.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("sandbox/", include("sandbox.urls")),
    path("", include("booking.urls")),
    path("referral/", include("referral.urls")),
    # The sandbox payment channel bills the platform's ledger under the platform's settings of the
    # channel: the simulated provider is told here what a real one would know from its own books.
    path(
        "sandbox/pay/<str:pay_channel>/bill",
        payments.enabled_only(payments.bill_view),
        {"account": finance.sandbox_account, "entries": finance.ledger_bill_entries},
        name="sandbox-pay-bill",
    ),
]
# DEBUG only (an empty list otherwise): the admin's CSS and scripts under `make run`'s gunicorn.
urlpatterns += staticfiles_urlpatterns()
