from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from regional.observability import metrics_view
from regional.soap.center import center_endpoint
from regional.views import healthz, index, interface_docs

admin.site.site_header = "区域医疗健康资源平台"
admin.site.site_title = "区域医疗健康资源平台"
admin.site.index_title = "平台管理"

urlpatterns = [
    path("", index, name="index"),
    path("admin/", admin.site.urls),
    path("ws/center", center_endpoint, name="center-ws"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("interfaces/", interface_docs, name="interface-docs"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: no inline script, so the CSP holds there too.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("sandbox/", include("regional.sandbox.urls")),
    path("", include("booking.urls")),
    path("referral/", include("referral.urls")),
    path("", include("reconciliation.urls")),
]
