"""Swagger UI pages from the dist files of an installed package (never a CDN: the suite works offline).

A page refers to its assets and OpenAPI documents by relative URLs, so the same page works at a service's own
`/docs` and through the gateway at `/api/docs/<service>/docs`.
"""

import json
from pathlib import Path

import swagger_ui_bundle

from .catalog import CATALOGUE

# The services with an OpenAPI document (the FastAPI ones), in the order the suite's docs page lists them.
DOCUMENTED_SERVICES = tuple(service.name for service in CATALOGUE.documented())
SWAGGER_UI_DIR = Path(swagger_ui_bundle.swagger_ui_path)
# The files a page loads; nothing else of the package is served.
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"})


def asset_path(name: str) -> Path | None:
    """The file of an asset a page may load, else None."""
    return SWAGGER_UI_DIR / name if name in ASSETS else None


def swagger_page(title: str, assets: str, documents: list[tuple[str, str]]) -> str:
    """Swagger UI over `documents` ((name, URL) pairs): one document, or a selector over several."""
    config: dict = {"dom_id": "#swagger-ui", "deepLinking": True}
    if len(documents) == 1:
        config["url"] = documents[0][1]
    else:
        config["urls"] = [{"name": name, "url": url} for name, url in documents]
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{assets}swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}swagger-ui-bundle.js"></script>
  <script src="{assets}swagger-ui-standalone-preset.js"></script>
  <script>
    const config = {json.dumps(config)};
    window.ui = SwaggerUIBundle({{
      ...config,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: config.urls ? "StandaloneLayout" : "BaseLayout",
    }});
  </script>
</body>
</html>
"""
