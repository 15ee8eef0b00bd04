from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "web"
    verbose_name = "Students' web pages"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from web.login_cache import forget_user

        # A user saved or deleted by this process: its remembered sessions go at once
        # (other processes, and bulk updates, hear of it from PostgreSQL).
        user_model = get_user_model()
        post_save.connect(forget_user, sender=user_model, dispatch_uid="web.login_cache.save")
        post_delete.connect(forget_user, sender=user_model, dispatch_uid="web.login_cache.delete")
