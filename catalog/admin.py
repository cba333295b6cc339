from django.contrib import admin
from django.db.models import Count

from catalog.models import AdBreak, Genre, Title, Viewer


@admin.register(Genre)
class GenreAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "title_count"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(title_count=Count("titles"))

    @admin.display(ordering="title_count", description="titles")
    def title_count(self, genre: Genre) -> int:
        return genre.title_count  # type: ignore[attr-defined]


class AdBreakInline(admin.TabularInline):
    model = AdBreak
    extra = 1
    fields = ["offset_seconds", "max_pod_duration_seconds"]


@admin.register(Title)
class TitleAdmin(admin.ModelAdmin):
    list_display = ["name", "year", "kind", "maturity_rating", "duration_seconds", "break_count"]
    list_filter = ["kind", "maturity_rating", "genres"]
    search_fields = ["name", "external_id"]
    filter_horizontal = ["genres"]
    inlines = [AdBreakInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(break_count=Count("ad_breaks"))

    @admin.display(ordering="break_count", description="ad breaks")
    def break_count(self, title: Title) -> int:
        return title.break_count  # type: ignore[attr-defined]


@admin.register(AdBreak)
class AdBreakAdmin(admin.ModelAdmin):
    list_display = ["title", "offset_seconds", "max_pod_duration_seconds"]
    list_select_related = ["title"]
    search_fields = ["title__name"]
    autocomplete_fields = ["title"]


@admin.register(Viewer)
class ViewerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "age_band", "gender", "region", "device", "is_kids"]
    list_filter = ["age_band", "gender", "region", "device", "is_kids"]
    search_fields = ["external_id"]
