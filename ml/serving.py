"""Serving: each process holds its kinds' champions in memory, loaded once, and reloads when
the champion changes (a pointer in the cache, checked at most once a second)."""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from ml.models import ModelVersion
from ml.services import champion_pointer_key

CHECK_SECONDS = 1.0
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version_id: int
    version: int
    model: Any
    feature_spec: dict


class ChampionCache:
    def __init__(self) -> None:
        self._loaded: dict[str, LoadedModel | None] = {}
        self._checked: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, kind: str) -> LoadedModel | None:
        now = time.monotonic()
        if now - self._checked.get(kind, -CHECK_SECONDS) < CHECK_SECONDS:
            return self._loaded.get(kind)
        self._checked[kind] = now
        try:
            pointer = cache.get(champion_pointer_key(kind))
        except Exception:
            # The cache (Redis) is out of reach: the champion this process holds serves on
            # (checked again in a second); a process that holds none reads the table.
            logger.warning("The champion pointer cannot be read.", exc_info=True)
            if kind in self._loaded:
                return self._loaded[kind]
            pointer = None
        loaded = self._loaded.get(kind)
        if pointer is not None and loaded is not None and loaded.version_id == pointer:
            return loaded
        with self._lock:
            champion = (
                ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.CHAMPION)
                .only("pk", "version", "feature_spec", "artifact")
                .first()
            )
            if champion is None:
                self._loaded[kind] = None
                return None
            if loaded is None or loaded.version_id != champion.pk:
                try:
                    import joblib  # here: only a process with a champion to load needs it

                    model = joblib.load(io.BytesIO(bytes(champion.artifact)))
                except Exception:
                    # An unreadable artifact must not break what serves: callers fall back
                    # to their no-model path until staff promote or roll back.
                    logger.exception(
                        "The %s champion v%s cannot be loaded.", kind, champion.version
                    )
                    self._loaded[kind] = None
                    return None
                self._loaded[kind] = LoadedModel(
                    champion.pk, champion.version, model, champion.feature_spec
                )
            with contextlib.suppress(Exception):  # out of reach: read again next time
                cache.set(champion_pointer_key(kind), champion.pk, None)
            return self._loaded[kind]

    def reset(self) -> None:
        self._loaded.clear()
        self._checked.clear()


champions = ChampionCache()


def champion(kind: str) -> LoadedModel | None:
    """The kind's champion, or None when there is none yet."""
    return champions.get(kind)
