from django.urls import path

from ads import views

urlpatterns = [
    path("", views.account_list, name="accounts"),
    path("<slug:slug>/", views.overview, name="overview"),
]
