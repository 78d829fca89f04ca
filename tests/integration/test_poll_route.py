"""The poll's route answers its common requests itself and the rest through FastAPI's
validation: either way the caller gets the same answer."""

from __future__ import annotations

import httpx
import pytest

from support import assert_error

CREATE = {"model": "veo3.1-fast", "prompt": "a tram at night"}


async def _task(client: httpx.AsyncClient) -> str:
    created = await client.post("/v1/videos/generations", json=CREATE)
    assert created.status_code == 200, created.text
    task_id: str = created.json()["id"]
    return task_id


def _answer(response: httpx.Response) -> tuple[int, bytes, str | None]:
    return response.status_code, response.content, response.headers.get("x-vidgate-wait-max")


async def test_a_poll_is_answered_alike_with_or_without_other_parameters(
    client: httpx.AsyncClient,
) -> None:
    task_id = await _task(client)
    path = f"/v1/tasks/{task_id}"
    plain = _answer(await client.get(path))
    assert plain[0] == 200
    assert plain[2] == "30"
    # ``other`` is no parameter of the route: such a query goes through FastAPI's handler.
    for query in ("wait=0", "wait=0.0", "other=1", "wait=0&other=1"):
        assert _answer(await client.get(f"{path}?{query}")) == plain, query


async def test_a_finished_task_answers_a_wait_as_it_stands(client: httpx.AsyncClient) -> None:
    task_id = await _task(client)
    cancelled = await client.post(f"/v1/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    for query in ("wait=30", "wait=5.5", "wait=30&other=1"):
        waited = await client.get(f"/v1/tasks/{task_id}?{query}")
        assert waited.status_code == 200
        assert waited.content == cancelled.content, query


@pytest.mark.parametrize("query", ["wait=31", "wait=30.5", "wait=-1", "wait=abc", "wait=1e9"])
async def test_a_wait_out_of_range_or_not_a_number_is_refused(
    client: httpx.AsyncClient, query: str
) -> None:
    task_id = await _task(client)
    response = await client.get(f"/v1/tasks/{task_id}?{query}")
    assert_error(response, 400, "invalid_request", param="wait")


async def test_refusals_are_the_same_on_either_path(client: httpx.AsyncClient) -> None:
    task_id = await _task(client)
    # Finished, so the default key's ?wait=1 is answered at once too.
    assert (await client.post(f"/v1/tasks/{task_id}/cancel")).status_code == 200
    for path in (f"/v1/tasks/{task_id}", "/v1/tasks/task-unified-1-nosuchtask", "/v1/tasks/x"):
        for headers in ({"Authorization": "Bearer sk-wrong"}, {"Authorization": ""}, {}):
            answers = {
                query: _answer(await client.get(path + query, headers=headers))
                for query in ("", "?wait=1", "?other=1")
            }
            statuses = {answer[0] for answer in answers.values()}
            assert len(set(answers.values())) == 1, (path, headers, answers)
            assert statuses <= {200, 400, 401, 404}
