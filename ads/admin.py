from django.contrib import admin

from ads.models import Advertiser, Campaign, Creative, LineItem, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Advertiser)
class AdvertiserAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "currency", "is_active", "created_at"]
    list_filter = ["is_active", "currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "advertiser", "role", "created_at"]
    list_filter = ["role", "advertiser"]
    search_fields = ["user__username", "user__email", "advertiser__name"]
    autocomplete_fields = ["user", "advertiser"]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "advertiser", "objective", "status", "start_date", "end_date"]
    list_filter = ["status", "objective", "advertiser"]
    search_fields = ["name", "advertiser__name"]
    list_select_related = ["advertiser"]


@admin.register(LineItem)
class LineItemAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "campaign",
        "advertiser",
        "status",
        "pricing",
        "bid",
        "daily_budget",
        "pacing",
        "start_at",
        "end_at",
    ]
    list_filter = ["status", "pricing", "pacing", "advertiser"]
    search_fields = ["name", "campaign__name", "advertiser__name"]
    list_select_related = ["campaign", "advertiser"]
    filter_horizontal = ["target_genres"]
    autocomplete_fields = ["campaign", "include_titles", "exclude_titles"]


@admin.register(Creative)
class CreativeAdmin(admin.ModelAdmin):
    list_display = ["name", "line_item", "advertiser", "category", "duration_seconds", "status"]
    list_filter = ["status", "category", "duration_seconds", "advertiser"]
    search_fields = ["name", "line_item__name", "advertiser__name"]
    list_select_related = ["line_item", "advertiser"]
    autocomplete_fields = ["line_item"]
