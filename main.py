"""The ASGI entry point: `uvicorn main:app --host 0.0.0.0`."""

from api.app import create_app

app = create_app()
