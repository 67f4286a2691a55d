"""Celery entry point for a checkout: `celery -A celery_config worker` works from here.

The configuration itself is derived from keepa-deals' Settings (REDIS_URL for broker and
results, one queue per task, beat's schedule) in `keepa_deals.service.celery_app`;
`keepa-deals worker` and `keepa-deals beat` use the same app.
"""

from keepa_deals.service.celery_app import app, celery_settings

__all__ = ["app", "celery_settings"]
