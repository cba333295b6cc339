from urllib.parse import urlencode

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from ads import services
from ads.models import (
    AccountKey,
    AdEvent,
    Advertiser,
    AuditEntry,
    Campaign,
    Creative,
    LineItem,
    Membership,
    PlatformKey,
    Player,
)
from ads.services.audit import OBJECT_TYPES, Actor, audit_record, audit_stored
from ads.services.players import players_forget
from catalog import selectors as catalog_selectors


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


class AuditedAdmin(admin.ModelAdmin):
    """A change saved in admin leaves its audit entry (ads.services.audit), as the pages and
    the API do, and the change page shows the object's latest entries. The state before is
    read from the database in save_model (the form has already changed the instance); the
    entry is written after save_related, once the many-to-many fields are saved too."""

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "history"]

    def save_model(self, request, obj, form, change):
        request.audit_before = audit_stored(obj) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        audit_record(
            item=form.instance,
            actor=Actor.admin(request.user),
            before=getattr(request, "audit_before", None),
        )

    @admin.display(description="History")
    def history(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "—"
        entries = AuditEntry.objects.filter(
            advertiser_id=obj.advertiser_id, object_type=OBJECT_TYPES[type(obj)], object_id=obj.pk
        ).select_related("user", "key")[:10]
        return (
            format_html_join(
                "",
                "<p>{} · {} · {} · {}</p>",
                (
                    (
                        entry.at.strftime("%Y-%m-%d %H:%M"),
                        entry.get_action_display(),
                        f"{entry.actor} ({entry.get_path_display()})",
                        "; ".join(entry.change_lines),
                    )
                    for entry in entries
                ),
            )
            or "—"
        )


@admin.register(Campaign)
class CampaignAdmin(AuditedAdmin):
    list_display = ["name", "advertiser", "objective", "status", "start_date", "end_date"]
    list_filter = ["status", "objective", "advertiser"]
    search_fields = ["name", "advertiser__name"]
    list_select_related = ["advertiser"]


@admin.register(LineItem)
class LineItemAdmin(AuditedAdmin):
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
class CreativeAdmin(AuditedAdmin):
    list_display = ["name", "line_item", "advertiser", "category", "duration_seconds", "status"]
    list_filter = ["status", "category", "duration_seconds", "advertiser"]
    search_fields = ["name", "line_item__name", "advertiser__name"]
    list_select_related = ["line_item", "advertiser"]
    autocomplete_fields = ["line_item"]


@admin.register(PlatformKey)
class PlatformKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created, raw_key = services.platform_key_create(name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = created.pk, created.prefix, created.key_hash
        obj.created_at = created.created_at
        messages.warning(
            request,
            f"The key of “{obj.name}” is {raw_key} — copy it now: it is not shown again.",
        )

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        revoked = queryset.update(is_active=False)
        self.message_user(request, f"Revoked {revoked} key(s); they stop working within 30 s.")


@admin.register(Player)
class PlayerAdmin(admin.ModelAdmin):
    """Public player ids, with each one's tags: what an integrator pastes into its player."""

    list_display = ["public_id", "name", "is_active", "requests_per_minute"]
    list_filter = ["is_active"]
    search_fields = ["public_id", "name"]
    readonly_fields = ["vast_tag", "vmap_url", "created_at"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        players_forget()  # this process at once; the others within 30 s

    def _tag(self, obj: Player, path: str, with_break: bool) -> str:
        if obj.pk is None:
            return "-"
        ad_break, viewer = catalog_selectors.ad_tag_example()
        query = {"player": obj.public_id}
        if ad_break is not None and viewer is not None:
            query |= {"viewer": viewer.external_id, "title": ad_break.title_id}
            if with_break:
                query["break"] = ad_break.pk
            query["device"] = viewer.device
        url = f"{path}?{urlencode(query)}"
        return format_html('<a href="{}"><code>{}</code></a>', url, url)

    @admin.display(description="VAST tag (an example viewer and break)")
    def vast_tag(self, obj: Player) -> str:
        return self._tag(obj, "/vast/4.2", with_break=True)

    @admin.display(description="VMAP URL (an example viewer and title)")
    def vmap_url(self, obj: Player) -> str:
        return self._tag(obj, "/vmap/1.0", with_break=False)


@admin.register(AdEvent)
class AdEventAdmin(admin.ModelAdmin):
    list_display = [
        "event_type",
        "occurred_at",
        "advertiser",
        "line_item",
        "creative",
        "viewer",
        "cost_micros",
    ]
    list_filter = ["event_type", "advertiser"]
    search_fields = ["event_id", "client_event_id"]
    list_select_related = ["advertiser", "line_item", "creative", "viewer"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AccountKey)
class AccountKeyAdmin(admin.ModelAdmin):
    """Staff see every account's keys and revoke a leaked one; only owners make keys (on
    their account's API keys page)."""

    list_display = [
        "name",
        "advertiser",
        "prefix",
        "scope",
        "created_by",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "advertiser__name"]
    list_select_related = ["advertiser", "created_by"]
    readonly_fields = [field.name for field in AccountKey._meta.fields if field.name != "id"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            services.account_key_revoke(
                key=key, revoked_by=request.user, actor=Actor.admin(request.user)
            )
        self.message_user(request, "Revoked; requests with them are refused from now on.")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit trail, read-only: entries are only ever added, by the services."""

    list_display = ["at", "advertiser", "object_type", "object_name", "action", "actor", "path"]
    list_filter = ["path", "action", "object_type", "advertiser"]
    search_fields = ["object_name", "advertiser__name", "user__username", "key__name"]
    list_select_related = ["advertiser", "user", "key"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
