"""Sandbox hospitals: `/sandbox/his/<HospitalNo>/ws` (GET: WSDL, POST: SOAP)."""

from django.urls import path

from sandbox.soap import his_endpoint

urlpatterns = [
    path("his/<str:hospital_no>/ws", his_endpoint, name="sandbox-his-ws"),
]
