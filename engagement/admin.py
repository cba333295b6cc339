from django.contrib import admin

from engagement.models import Rating


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ["viewer", "title", "rating", "rated_at"]
    list_filter = ["rating"]
    search_fields = ["viewer__external_id", "title__name"]
    list_select_related = ["viewer", "title"]
    raw_id_fields = ["viewer", "title"]
