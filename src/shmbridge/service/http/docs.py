"""``/docs``: the OpenAPI browser, served from files installed with the package, never from a CDN.

FastAPI's default page loads Swagger UI from jsDelivr, which leaves it blank on a host without internet
access (and makes every visit to a local service phone out). The ``fastapi-offline`` wheel ships a current
Swagger UI 5 build (5.x reads OpenAPI 3.1, the version FastAPI writes; the 4.x that ``swagger-ui-bundle``
shipped could not, and showed "Unable to render this definition"). Its files are mounted under
``/docs/assets``. ReDoc is switched off, and so is Swagger UI's online validator badge (it calls out).

It must never reference a URL outside this service.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
#: Swagger UI's options: no validator badge (it fetches from the internet), the operations listed open.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None, "docExpansion": "list", "tryItOutEnabled": False}


def swagger_ui_files() -> Path:
    """The folder inside the installed ``fastapi_offline`` package that holds Swagger UI's JS and CSS."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from the installed ``fastapi_offline`` files."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_files()), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
