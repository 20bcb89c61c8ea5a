from django.urls import path

from reconciliation.views import sandbox_bill

urlpatterns = [
    path("sandbox/pay/<str:pay_channel>/bill", sandbox_bill, name="sandbox-pay-bill"),
]
