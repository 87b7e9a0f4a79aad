from django.apps import AppConfig


class RollgateConfig(AppConfig):
    name = "rollgate.django"
    label = "rollgate"
    verbose_name = "Rollgate feature flags"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        setting_changed.connect(_path_changed, dispatch_uid="rollgate-flags-path")


def _path_changed(setting: str, **kwargs) -> None:
    if setting == "ROLLGATE_FLAGS_PATH":
        import rollgate

        rollgate.reset_default_client()
