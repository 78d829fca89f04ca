"""Files in an S3-compatible bucket: the FileStore that API replicas and workers share."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import boto3
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vidgate.errors import ServiceUnavailable
from vidgate.media.files import CHUNK, FileInfo, check_key, media_type

log = logging.getLogger(__name__)

# S3 refuses presigned URLs that live longer than seven days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
DELETE_BATCH = 1000  # the most keys one DeleteObjects takes
_MISSING = {"NoSuchKey", "404", "NotFound"}


@contextmanager
def _reachable(bucket: str) -> Iterator[None]:
    """A bucket that cannot be reached, or fails on its side after boto3's retries, is a 503
    to retry later (with Retry-After), not a 500; a missing object is the caller's business."""
    try:
        yield
    except BotoCoreError as error:  # connection refused or reset, timeouts, DNS
        # botocore's wording names the endpoint and its own internals: logged, not answered.
        log.warning("file store %r unreachable: %s", bucket, error)
        raise ServiceUnavailable(
            "The file store is unavailable; retry shortly.",
            headers={"Retry-After": "5"},
        ) from error
    except ClientError as error:
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500:
            raise ServiceUnavailable(
                f"The file store {bucket!r} failed; retry shortly.",
                headers={"Retry-After": "5"},
            ) from error
        raise


class S3FileStore:
    """Objects named ``<prefix>/<key>`` in one bucket. Each PUT lands whole (S3 never shows a
    partial object), so writes are as atomic as the local store's rename."""

    def __init__(
        self,
        bucket: str,
        *,
        scratch: Path,
        prefix: str = "",
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: str = "auto",  # auto, path or virtual
        presign: bool = False,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.scratch = scratch
        self.presign = presign
        self.list_page_size = 1000  # S3's own page size; tests make both small
        self.delete_batch = DELETE_BATCH
        # Without explicit keys boto3 looks in its usual places (AWS_* variables, profiles,
        # instance or pod roles).
        self._session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
            # Checksums only where S3 requires them: not every S3-compatible store knows the
            # newer ones.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self.client: Any = self._session.client("s3", endpoint_url=endpoint_url, config=config)
        # Presigned URLs name the host clients reach, which may differ from the API's own.
        self._presigner: Any = (
            self._session.client("s3", endpoint_url=public_endpoint_url, config=config)
            if public_endpoint_url
            else self.client
        )

    def _name(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def check(self) -> None:
        """Fail with one clear line when the bucket cannot be reached (used at startup)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as error:
            raise RuntimeError(f"S3 bucket {self.bucket!r} is not usable: {error}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        with _reachable(self.bucket):
            self.client.put_object(
                Bucket=self.bucket, Key=self._name(key), Body=data, ContentType=media_type(key)
            )

    def put_file(self, key: str, source: Path) -> None:
        with _reachable(self.bucket):
            self.client.upload_file(
                str(source),
                self.bucket,
                self._name(key),
                ExtraArgs={"ContentType": media_type(key)},
            )
        source.unlink(missing_ok=True)

    def _get(self, key: str, **options: str) -> dict[str, Any] | None:
        try:
            with _reachable(self.bucket):
                answer: dict[str, Any] = self.client.get_object(
                    Bucket=self.bucket, Key=self._name(key), **options
                )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return answer

    def read_bytes(self, key: str) -> bytes | None:
        answer = self._get(key)
        if answer is None:
            return None
        body = answer["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def download_to(self, key: str, dest: Path) -> bool:
        answer = self._get(key)
        if answer is None:
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        with temp.open("wb") as handle:
            for chunk in _chunks(answer["Body"]):
                handle.write(chunk)
        # The stored time, not now: whatever is derived from it is the same on every attempt.
        modified = answer["LastModified"].timestamp()
        os.utime(temp, (modified, modified))
        temp.replace(dest)
        return True

    def stat(self, key: str) -> FileInfo | None:
        try:
            with _reachable(self.bucket):
                head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return FileInfo(
            size=int(head["ContentLength"]),
            modified=head["LastModified"].timestamp(),
            etag=str(head["ETag"]),
        )

    def open_range(self, key: str, start: int, end: int) -> Iterator[bytes] | None:
        answer = self._get(key, Range=f"bytes={start}-{end}")
        return None if answer is None else _chunks(answer["Body"])

    def delete_prefix(self, prefix: str) -> None:
        with _reachable(self.bucket):
            self._delete_prefix(self._name(prefix.rstrip("/")))

    def _delete_prefix(self, name: str) -> None:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=name, PaginationConfig={"PageSize": self.list_page_size}
        )
        batch: list[dict[str, str]] = []
        for page in pages:
            for item in page.get("Contents", ()):
                # "inputs/task-1" must not take "inputs/task-10/..." with it.
                if item["Key"] == name or item["Key"].startswith(name + "/"):
                    batch.append({"Key": item["Key"]})
                if len(batch) == self.delete_batch:
                    self._delete(batch)
                    batch = []
        if batch:
            self._delete(batch)

    def _delete(self, objects: list[dict[str, str]]) -> None:
        answer = self.client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
        )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(
                f"S3 refused to delete {len(errors)} object(s), e.g. {first.get('Key')}: "
                f"{first.get('Code')} {first.get('Message')}"
            )

    def presigned_url(self, key: str, *, expires: int, signed_at: int) -> str | None:
        """A GET URL signed as of ``signed_at`` (not now), so it is a pure function of its
        arguments and the credentials: a poll and a callback of the same hour agree."""
        if not self.presign:
            return None
        lifetime = expires - signed_at
        if not 0 < lifetime <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"a presigned URL lives 1 s to 7 days, not {lifetime} s")
        # botocore works out the URL (endpoint, addressing style, key quoting) and the signing
        # scope; only its signing time is replaced.
        plain = self._presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._name(key)}, ExpiresIn=1
        )
        base, _, query = plain.partition("?")
        params = parse_qsl(query, keep_blank_values=True)
        credential = dict(params)["X-Amz-Credential"].split("/")  # id/date/region/service/...
        rest = [(name, value) for name, value in params if not name.startswith("X-Amz-")]
        credentials = self._session.get_credentials()
        if credentials is None:
            raise RuntimeError("no S3 credentials to sign a URL with")
        signer = _SignedAt(
            credentials.get_frozen_credentials(),
            credential[-2],
            credential[-3],
            expires=lifetime,
            timestamp=datetime.fromtimestamp(signed_at, UTC).strftime(SIGV4_TIMESTAMP),
        )
        request = AWSRequest(method="GET", url=f"{base}?{urlencode(rest)}" if rest else base)
        signer.add_auth(request)
        url: str = request.url
        return url

    def scratch_dir(self) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        return self.scratch


class _SignedAt(S3SigV4QueryAuth):  # type: ignore[misc]
    """botocore's presigner with a given signing time instead of the clock's."""

    def __init__(
        self, credentials: Any, service: str, region: str, *, expires: int, timestamp: str
    ) -> None:
        super().__init__(credentials, service, region, expires=expires)
        self._timestamp = timestamp

    def add_auth(self, request: Any) -> None:
        # SigV4Auth.add_auth, less its one read of the clock.
        request.context["timestamp"] = self._timestamp
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical)
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


def _chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()
