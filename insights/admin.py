"""Staff read conversations in admin to audit answers: which path answered, the tools called
with their arguments and results, tokens and latency. Read-only: answers are records."""

from django.contrib import admin

from insights.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "text", "path", "note", "latency_ms", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("id", "advertiser", "user", "updated_at")
    list_filter = ("advertiser",)
    readonly_fields = ("advertiser", "user", "created_at", "updated_at")
    inlines = [MessageInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "advertiser", "role", "path", "refused", "latency_ms", "created_at")
    list_filter = ("path", "role", "refused")
    search_fields = ("text", "note")
    readonly_fields = [field.name for field in Message._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
