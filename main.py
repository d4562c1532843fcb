"""The ASGI entry point: `uvicorn main:app --host 0.0.0.0`.

The settings are read from the environment once, here; invalid ones stop the start with
`InvalidSettings`, naming the variables.
"""

from api.app import create_app
from api.settings import load_settings

app = create_app(load_settings())
