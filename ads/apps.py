from django.apps import AppConfig


class AdsConfig(AppConfig):
    name = "ads"

    def ready(self) -> None:
        from ads import signals

        signals.connect()
