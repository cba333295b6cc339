from django.contrib import admin

from engagement.models import PlaybackEvent, Rating, ViewingSession


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ["viewer", "title", "rating", "rated_at"]
    list_filter = ["rating"]
    search_fields = ["viewer__external_id", "title__name"]
    list_select_related = ["viewer", "title"]
    raw_id_fields = ["viewer", "title"]


class PlaybackEventInline(admin.TabularInline):
    model = PlaybackEvent
    fields = ["at", "kind", "position_seconds", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ViewingSession)
class ViewingSessionAdmin(admin.ModelAdmin):
    list_display = [
        "viewer",
        "title",
        "device",
        "started_at",
        "ended_at",
        "watched_seconds",
        "completed",
        "abandoned",
    ]
    list_filter = ["device", "completed", "abandoned", "started_at"]
    search_fields = ["viewer__external_id", "title__name"]
    list_select_related = ["viewer", "title"]
    raw_id_fields = ["viewer", "title"]
    date_hierarchy = "started_at"
    inlines = [PlaybackEventInline]


@admin.register(PlaybackEvent)
class PlaybackEventAdmin(admin.ModelAdmin):
    list_display = ["session", "kind", "position_seconds", "at"]
    list_filter = ["kind", "at"]
    search_fields = ["session__viewer__external_id", "session__title__name"]
    list_select_related = ["session__viewer", "session__title"]
    raw_id_fields = ["session"]
