from django.urls import path

from referral import views

app_name = "referral"

urlpatterns = [
    path("api/SxzzAppServlet", views.servlet, name="servlet"),
    path("referral/his.html", views.his_form, name="his"),
    path("referral/znts.html", views.znts_notice, name="znts"),
    path("referral/departments.json", views.department_options, name="departments"),
]
