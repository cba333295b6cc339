from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from ml import services
from ml.models import DriftMeasurement, ModelVersion, TrainingRun


def _confirm(modeladmin, request, queryset, *, action: str, question: str):
    """Django admin's two-step action: show a confirmation page, act on its POST."""
    return TemplateResponse(
        request,
        "admin/ml/confirm_action.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": question,
            "queryset": queryset,
            "action": action,
            "opts": modeladmin.model._meta,
        },
    )


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "algorithm",
        "trained_at",
        "auc",
        "log_loss",
        "calibration",
        "train_rows",
        "decision",
    ]
    list_filter = ["kind", "status", "algorithm"]
    readonly_fields = [
        field.name for field in ModelVersion._meta.fields if field.name != "artifact"
    ]
    exclude = ["artifact"]
    actions = ["promote", "roll_back"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="AUC")
    def auc(self, version: ModelVersion):
        return f"{version.metrics.get('auc', 0):.4f}"

    @admin.display(description="log loss")
    def log_loss(self, version: ModelVersion):
        return f"{version.metrics.get('log_loss', 0):.4f}"

    @admin.display(description="calibration")
    def calibration(self, version: ModelVersion):
        return f"{version.metrics.get('calibration_ratio', 0):.3f}"

    @admin.action(description="Promote the selected version to champion")
    def promote(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return None
        version = queryset.get()
        if "confirm" not in request.POST:
            return _confirm(
                self,
                request,
                queryset,
                action="promote",
                question=f"Make {version} the {version.kind} champion?",
            )
        services.model_version_promote(
            model_version=version, reason=f"Promoted by {request.user} in admin."
        )
        self.message_user(request, f"{version.kind} v{version.version} is the champion.")
        return None

    @admin.action(description="Roll back to the previous champion of this kind")
    def roll_back(self, request, queryset):
        kinds = set(queryset.values_list("kind", flat=True))
        if len(kinds) != 1:
            self.message_user(request, "Select versions of one kind.", messages.ERROR)
            return None
        (kind,) = kinds
        if "confirm" not in request.POST:
            return _confirm(
                self,
                request,
                queryset,
                action="roll_back",
                question=f"Roll the {kind} champion back to the previous one?",
            )
        try:
            restored = services.model_version_rollback(kind=kind)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return None
        self.message_user(request, f"{kind} v{restored.version} is the champion again.")
        return None


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["kind", "started_at", "finished_at", "outcome", "model_version"]
    list_filter = ["kind", "outcome"]
    readonly_fields = [field.name for field in TrainingRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(DriftMeasurement)
class DriftMeasurementAdmin(admin.ModelAdmin):
    list_display = ["kind", "day", "model_version", "psi", "rows"]
    list_filter = ["kind"]
    date_hierarchy = "day"
