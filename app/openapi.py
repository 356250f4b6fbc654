"""openapi.yaml is generated from the app; tests/test_openapi.py fails when it drifts."""

from __future__ import annotations

import yaml

from app.config import Settings
from app.main import create_app


def render_openapi() -> str:
    app = create_app(Settings(database_url=None, admin_key=None))
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True, width=100)
