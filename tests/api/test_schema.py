"""The OpenAPI schema and its docs, served by the portal with no outside assets."""

import re

import yaml
from django.urls import reverse


def test_the_schema_documents_every_endpoint_and_its_errors(client, db):
    response = client.get(reverse("api-schema"))
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    for path in [
        "/api/v1/orders/",
        "/api/v1/orders/{order_no}/",
        "/api/v1/orders/{order_no}/ship/",
        "/api/v1/orders/{order_no}/verify-pending/",
        "/api/v1/orders/{order_no}/print-waybill/",
        "/api/v1/orders/{order_no}/report-blocked/",
        "/api/v1/orders/{order_no}/extend-deadline/",
        "/api/v1/worklists/{name}/",
        "/api/v1/carrier-events/",
    ]:
        assert path in paths, path
    ship = paths["/api/v1/orders/{order_no}/ship/"]["post"]
    assert {"400", "401", "403", "404", "409"} <= set(ship["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in ship["parameters"])
    assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "Authorization"


def test_the_docs_page_loads_only_the_portals_own_assets(client, db):
    page = client.get(reverse("api-docs")).content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources, "the page loads its assets"
    assert all(s.startswith("/") for s in sources), sources
    for source in sources:
        if source.startswith("/static/"):
            assert client.get(source).status_code == 200, source
