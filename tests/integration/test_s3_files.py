"""Inputs and results in an S3 bucket: moto's S3 server on loopback stands in for the bucket."""

from __future__ import annotations

import datetime
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.auth
import httpx
import pytest
from moto.server import ThreadedMotoServer

from support import ADMIN_KEY, StaticServer, free_port, image_bytes, structured_image
from vidgate.errors import ServiceUnavailable
from vidgate.media.probe import probe
from vidgate.media.s3 import S3FileStore
from vidgate.queue.worker import Worker
from vidgate.services import Services, _input_urls
from vidgate.settings import Settings

REGION = "us-east-1"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
PREFIX = "vg"
_buckets = itertools.count()


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    """A plain boto3 client, to look into the bucket behind the store's back."""
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION, **KEYS)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"vidgate-test-{next(_buckets)}-{int(time.time() * 1000)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(bucket: str, moto_endpoint: str, tmp_path: Path) -> S3FileStore:
    return S3FileStore(
        bucket,
        scratch=tmp_path / "scratch",
        prefix=PREFIX,
        endpoint_url=moto_endpoint,
        region=REGION,
        access_key_id=KEYS["aws_access_key_id"],
        secret_access_key=KEYS["aws_secret_access_key"],
        presign=True,
    )


@pytest.fixture
def result_urls() -> str:
    return "stream"


@pytest.fixture
def settings(
    tmp_path: Path,
    static_server: StaticServer,
    database_url: str | None,
    moto_endpoint: str,
    bucket: str,
    result_urls: str,
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        workers=0,
        egress_allow=frozenset({("127.0.0.1", static_server.port)}),
        public_url="http://testserver",
        bootstrap_key=ADMIN_KEY,
        bootstrap_credits=1000,
        s3_bucket=bucket,
        s3_endpoint_url=moto_endpoint,
        s3_region=REGION,
        s3_access_key_id=KEYS["aws_access_key_id"],
        s3_secret_access_key=KEYS["aws_secret_access_key"],
        s3_prefix=PREFIX,
        s3_result_urls=result_urls,
    )


def names(s3: Any, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


# --- the store alone -------------------------------------------------------------------------


def test_the_store_puts_reads_downloads_and_ranges(
    store: S3FileStore, s3: Any, bucket: str, tmp_path: Path
) -> None:
    store.put_bytes("inputs/task-1/0.png", b"a png")
    source = tmp_path / "result.mp4"
    source.write_bytes(bytes(range(256)) * 4)
    store.put_file("results/task-1-1.mp4", source)
    assert not source.exists()  # moved into the store, like the local store does
    assert names(s3, bucket) == ["vg/inputs/task-1/0.png", "vg/results/task-1-1.mp4"]
    head = s3.head_object(Bucket=bucket, Key="vg/results/task-1-1.mp4")
    assert head["ContentType"] == "video/mp4"

    assert store.read_bytes("inputs/task-1/0.png") == b"a png"
    assert store.read_bytes("inputs/task-1/1.png") is None

    dest = tmp_path / "work" / "inputs" / "task-1" / "0.png"
    assert store.download_to("inputs/task-1/0.png", dest)
    assert dest.read_bytes() == b"a png"
    info = store.stat("inputs/task-1/0.png")
    assert info is not None
    assert (info.size, dest.stat().st_mtime) == (5, info.modified)  # the stored time
    assert not store.download_to("inputs/task-1/9.png", tmp_path / "nothing.png")
    assert store.stat("inputs/task-1/9.png") is None

    chunks = store.open_range("results/task-1-1.mp4", 100, 299)
    assert chunks is not None
    assert b"".join(chunks) == (bytes(range(256)) * 4)[100:300]
    assert store.open_range("results/task-1-2.mp4", 0, 10) is None
    with pytest.raises(ValueError, match="not a valid file key"):
        store.read_bytes("inputs/../secrets")


def test_delete_prefix_pages_through_the_listing_and_spares_neighbours(
    store: S3FileStore, s3: Any, bucket: str
) -> None:
    store.list_page_size = 3  # several listing pages and several delete batches
    store.delete_batch = 2
    for index in range(7):
        store.put_bytes(f"inputs/task-1/{index}.png", b"x")
    store.put_bytes("inputs/task-10/0.png", b"a neighbour whose name starts the same")
    store.put_bytes("results/task-1-1.mp4", b"v")
    store.delete_prefix("inputs/task-1")
    assert names(s3, bucket) == ["vg/inputs/task-10/0.png", "vg/results/task-1-1.mp4"]
    store.delete_prefix("results/task-1-1.mp4")  # a single file
    store.delete_prefix("results/task-1-1.mp4")  # nothing left: no error
    assert names(s3, bucket) == ["vg/inputs/task-10/0.png"]


def test_a_presigned_url_is_botocores_own_signed_at_the_given_time(
    store: S3FileStore, moto_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_bytes("results/task-1-1.mp4", b"the video")
    signed_at = 1_800_000_000
    expires = signed_at + 90_000
    url = store.presigned_url("results/task-1-1.mp4", expires=expires, signed_at=signed_at)
    assert url is not None
    assert url == store.presigned_url("results/task-1-1.mp4", expires=expires, signed_at=signed_at)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Date"] == ["20270115T080000Z"]
    assert query["X-Amz-Expires"] == ["90000"]
    assert url.startswith(f"{moto_endpoint}/{bucket}/vg/results/task-1-1.mp4?")

    # The same URL botocore itself makes when its clock reads signed_at: the signature is
    # right, only the time it is made at differs.
    moment = datetime.datetime.fromtimestamp(signed_at, datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kw: moment)
    reference = store.client.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "vg/results/task-1-1.mp4"},
        ExpiresIn=90_000,
    )
    assert url == reference
    assert httpx.get(url).content == b"the video"

    store.presign = False
    assert store.presigned_url("results/task-1-1.mp4", expires=expires, signed_at=signed_at) is None
    store.presign = True
    with pytest.raises(ValueError, match="7 days"):
        store.presigned_url(
            "results/task-1-1.mp4", expires=signed_at + 8 * 86400, signed_at=signed_at
        )


# --- a whole task on the bucket --------------------------------------------------------------


async def run_one_task(
    client: httpx.AsyncClient, services: Services, static_server: StaticServer
) -> dict[str, Any]:
    png = image_bytes(structured_image(640, 360, seed=3))
    url = static_server.add("/first.png", png, content_type="image/png")
    created = await client.post(
        "/v1/videos/generations",
        json={"model": "veo3.1-fast", "prompt": "A lighthouse at dusk", "image_urls": [url]},
    )
    assert created.status_code == 200, created.text
    task = await services.runs.claim("s3-worker")
    assert task is not None
    worker = Worker(
        services.runs,
        services.engines,
        name="s3-worker",
        scratch=services.files.scratch_dir(),
    )
    await worker.run_task(task)
    done = (await client.get(f"/v1/tasks/{task.id}")).json()
    assert done["status"] == "completed", done
    stored_input = services.files.read_bytes(f"inputs/{task.id}/0.png")
    assert stored_input == png
    return dict(done)


async def test_a_task_keeps_its_input_and_result_in_the_bucket_and_streams_ranges(
    client: httpx.AsyncClient,
    services: Services,
    static_server: StaticServer,
    s3: Any,
    bucket: str,
) -> None:
    assert isinstance(services.files, S3FileStore)
    done = await run_one_task(client, services, static_server)
    task_id = done["id"]
    assert names(s3, bucket) == [f"vg/inputs/{task_id}/0.png", f"vg/results/{task_id}-1.mp4"]
    assert not services.settings.files_dir.exists()  # nothing went to the local data dir

    [url] = done["results"]
    assert url.startswith(f"http://testserver/files/results/{task_id}-1.mp4?")
    whole = await client.get(url, headers={"Authorization": ""})
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == len(whole.content)
    saved = services.settings.data_dir / "check.mp4"
    saved.write_bytes(whole.content)
    info = probe(saved)
    assert (info.codec, info.width, info.height, info.frame_count) == ("h264", 1280, 720, 192)
    size = len(whole.content)

    ranged = await client.get(url, headers={"Range": "bytes=100-199", "Authorization": ""})
    assert ranged.status_code == 206
    assert ranged.content == whole.content[100:200]
    assert ranged.headers["content-range"] == f"bytes 100-199/{size}"
    tail = await client.get(url, headers={"Range": "bytes=-10", "Authorization": ""})
    assert (tail.status_code, tail.content) == (206, whole.content[-10:])
    assert tail.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    beyond = await client.get(url, headers={"Range": f"bytes={size}-", "Authorization": ""})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"
    stale = await client.get(
        url, headers={"Range": "bytes=0-9", "If-Range": '"another"', "Authorization": ""}
    )
    assert (stale.status_code, len(stale.content)) == (200, size)

    # Retention empties the bucket of the task's files.
    later = time.time() + 8 * 86400
    services.clock.source = lambda: later
    assert await services.reaper.purge_expired(7 * 86400) == 1
    assert names(s3, bucket) == []
    fresh = services.signer.sign(f"results/{task_id}-1.mp4", expires=int(later) + 60)
    gone = await client.get(fresh, headers={"Authorization": ""})
    assert gone.status_code == 404


@pytest.mark.parametrize("result_urls", ["presigned"])
async def test_presigned_result_urls_point_at_the_bucket_and_agree_all_hour(
    client: httpx.AsyncClient,
    services: Services,
    static_server: StaticServer,
    moto_endpoint: str,
    bucket: str,
) -> None:
    done = await run_one_task(client, services, static_server)
    [url] = done["results"]
    assert url.startswith(f"{moto_endpoint}/{bucket}/vg/results/{done['id']}-1.mp4?")
    again = (await client.get(f"/v1/tasks/{done['id']}")).json()
    assert again["results"] == [url]  # a second poll (or a callback) sends the same bytes

    ttl = services.settings.result_url_ttl_seconds
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == [str(ttl + 3600)]
    signed = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
    signed_at = int(signed.replace(tzinfo=datetime.UTC).timestamp())
    expires = signed_at + ttl + 3600
    assert expires % 3600 == 0
    assert signed_at <= time.time()  # never signed in the future
    assert time.time() + ttl <= expires < time.time() + ttl + 3600

    stored = services.files.read_bytes(f"results/{done['id']}-1.mp4")
    async with httpx.AsyncClient() as outside:
        direct = await outside.get(url)
        ranged = await outside.get(url, headers={"Range": "bytes=0-99"})
    assert direct.status_code == 200
    assert direct.content == stored
    assert (ranged.status_code, ranged.content) == (206, direct.content[:100])


async def test_input_links_for_upstream_engines_stream_from_the_bucket_and_survive_retries(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    """Engines that send image URLs upstream (relay) get /files links to the task's inputs;
    a retried attempt downloads the input again and must send the very same link."""
    png = image_bytes(structured_image(64, 48, seed=5))
    key = "inputs/task-unified-1-abcdefgh/0.png"
    services.files.put_bytes(key, png)
    image_url = _input_urls(services.settings, services.signer)
    stored = services.files.stat(key)
    assert stored is not None
    links = []
    for attempt in (1, 2):
        local = tmp_path / f"work-{attempt}" / key  # where a worker keeps it
        assert services.files.download_to(key, local)
        # The link's expiry comes from this time: the store's, not the download's.
        assert local.stat().st_mtime == stored.modified
        links.append(image_url(local))
    assert links[0] == links[1]
    assert links[0].startswith(f"http://testserver/files/{key}?")
    fetched = await client.get(links[0], headers={"Authorization": ""})
    assert (fetched.status_code, fetched.content) == (200, png)


async def test_an_upload_lands_in_the_bucket_and_feeds_a_task(
    client: httpx.AsyncClient, services: Services, s3: Any, bucket: str
) -> None:
    png = image_bytes(structured_image(320, 180, seed=9))
    uploaded = await client.post("/v1/files", files={"file": ("a.png", png, "image/png")})
    assert uploaded.status_code == 200, uploaded.text
    [stored] = names(s3, bucket)
    assert stored.startswith("vg/uploads/")
    assert stored.endswith(".png")
    created = await client.post(
        "/v1/videos/generations",
        json={"model": "veo3.1-fast", "prompt": "a kite", "image_urls": [uploaded.json()["url"]]},
    )
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    assert services.files.read_bytes(f"inputs/{task_id}/0.png") == png


def test_an_unreachable_bucket_is_service_unavailable(tmp_path: Path) -> None:
    store = S3FileStore(
        "nowhere",
        scratch=tmp_path / "scratch",
        endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        region=REGION,
        access_key_id=KEYS["aws_access_key_id"],
        secret_access_key=KEYS["aws_secret_access_key"],
    )
    with pytest.raises(ServiceUnavailable) as caught:
        store.put_bytes("uploads/1/a.png", b"x")
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "5"
    with pytest.raises(ServiceUnavailable):
        store.read_bytes("uploads/1/a.png")
