"""The URLconf of `manage.py sandbox_serve`: only the sandbox hospitals, nothing of the platform."""

from django.urls import include, path

urlpatterns = [
    path("sandbox/", include("sandbox.urls")),
]
