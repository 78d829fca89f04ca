"""/metrics' request series are bounded: made-up methods and paths share one label value each."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

TIMINGS = "vidgate_http_request_duration_seconds"


async def request_series(client: httpx.AsyncClient) -> set[tuple[tuple[str, str], ...]]:
    """The label sets of the request histogram, as the next scrape shows them."""
    response = await client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    return {
        tuple(sorted(sample.labels.items()))
        for family in text_string_to_metric_families(response.text)
        if family.name == TIMINGS
        for sample in family.samples
        if sample.name == f"{TIMINGS}_count"
    }


def series(route: str, method: str, status: int) -> tuple[tuple[str, str], ...]:
    return (("method", method), ("route", route), ("status", str(status)))


async def test_odd_methods_and_paths_add_a_fixed_number_of_series(
    client: httpx.AsyncClient,
) -> None:
    before = await request_series(client)
    for number in range(50):
        response = await client.request(f"ZZ{number:05d}", "/healthz")
        assert response.status_code == 405
    for number in range(50):
        response = await client.get(f"/no-such-page-{number}")
        assert response.status_code == 404
    for number in range(50):
        response = await client.request(f"QQ{number}", f"/nowhere/{number}")
        assert response.status_code == 404
    added = await request_series(client) - before
    assert added == {
        series("/healthz", "other", 405),
        series("unmatched", "GET", 404),
        series("unmatched", "other", 404),
        series("/metrics", "GET", 200),  # the first scrape itself
    }


async def test_known_methods_keep_their_own_label(client: httpx.AsyncClient) -> None:
    assert (await client.delete("/v1/models")).status_code == 405
    assert (await client.get("/v1/models")).status_code == 200
    found = await request_series(client)
    assert series("/v1/models", "DELETE", 405) in found
    assert series("/v1/models", "GET", 200) in found
