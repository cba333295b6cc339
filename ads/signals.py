"""Any change to what the decision engine indexes tells every process to rebuild its index.

Bulk writes send no signals: code that bulk-loads titles, viewers or demand calls
`ads.decisioning.index.index_changed()` itself (the data commands do)."""

from django.db.models.signals import m2m_changed, post_delete, post_save

from ads.decisioning.index import index_changed
from ads.models import Advertiser, Campaign, Creative, LineItem
from catalog.models import AdBreak, Title, Viewer

INDEXED_MODELS = (Advertiser, Campaign, LineItem, Creative, Title, AdBreak, Viewer)
INDEXED_RELATIONS = (
    LineItem.target_genres.through,
    LineItem.include_titles.through,
    LineItem.exclude_titles.through,
    Title.genres.through,
)


def _changed(sender, action: str = "post_save", **kwargs) -> None:
    if action.startswith("post_"):  # m2m_changed also sends pre_add, pre_remove, ...
        index_changed()


def connect() -> None:
    for model in INDEXED_MODELS:
        post_save.connect(_changed, sender=model, dispatch_uid=f"index-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"index-delete-{model.__name__}")
    for through in INDEXED_RELATIONS:
        m2m_changed.connect(_changed, sender=through, dispatch_uid=f"index-m2m-{through.__name__}")
