"""The ASGI entry point uvicorn imports: `app.asgi:app` (each worker process
imports it, and sets up its own logging)."""

from app.config import get_settings
from app.logs import configure
from app.main import create_app

_settings = get_settings()
configure(_settings.log_level, _settings.log_format)
app = create_app(_settings)
