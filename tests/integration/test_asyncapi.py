"""Every service serves the platform's AsyncAPI document, without a token."""

from __future__ import annotations

import json

from alfi_contracts import export


async def test_every_service_serves_the_asyncapi_document(platform):
    exported = json.loads((export.ROOT / "asyncapi.json").read_text())
    for service in (platform.intake, platform.casework, platform.veille, platform.stats):
        response = await service.get("/asyncapi.json")  # no Authorization header
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == exported
        openapi = (await service.get("/openapi.json")).json()
        assert "/asyncapi.json" in openapi["paths"]
