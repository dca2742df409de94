"""Artifacts in an S3-compatible object store (AWS S3, MinIO, Ceph…) instead of the
artifact folder, when a deployment sets ``NEUROREG_S3_BUCKET`` (and, for anything but AWS,
``NEUROREG_S3_ENDPOINT_URL``; credentials as boto3 reads them: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``).

The artifact folder then holds only files being written (staged, then uploaded) and a
cache of objects the API read back (a similarity matrix to draw), checked against the
object's ETag before each use. Rows keep the same relative paths (``<run>/<name>``), which
are the objects' keys under ``NEUROREG_S3_PREFIX``. Downloads go straight to the store: the
API answers with a redirect to a URL signed for ``NEUROREG_S3_URL_TTL_S`` seconds, and a
worker over the API uploads to such a URL (:mod:`server.routes.worker`).

:mod:`core.store.artifacts` finds the store for an artifact root with :func:`for_root`;
:func:`register` (called by :meth:`core.settings.Settings.object_store`) ties a root to
its store. An object store that cannot be reached raises :class:`StoreUnavailable`,
which the API answers with 503: nothing is recorded as stored that was not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_STORES: dict[Path, ObjectStore] = {}
_LOCK = threading.Lock()


class StoreUnavailable(RuntimeError):
    """The object store did not answer (or answered with a server error)."""


class ObjectStore:
    """One bucket (and key prefix) of an S3-compatible store, with a local cache."""

    def __init__(self, *, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 public_url: str | None = None, cache: Path, url_ttl_s: int = 300) -> None:
        """``endpoint_url``: where the API reaches the store; ``public_url``: where workers
        and browsers do, which the signed URLs name (default: the same)."""
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix, self.cache = bucket, prefix, cache
        self.url_ttl_s = url_ttl_s
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5,
                        read_timeout=60, signature_version="s3v4")
        self.client = boto3.client("s3", endpoint_url=endpoint_url or None, config=config)
        # a signature covers the host: URLs for others are signed for the address they use
        self.signer = boto3.client("s3", endpoint_url=public_url, config=config) \
            if public_url else self.client

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    @contextlib.contextmanager
    def _calling(self, what: str) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code >= 500 or code in (0, 429):
                raise StoreUnavailable(f"the object store failed to {what}: {exc}") from exc
            raise
        except BotoCoreError as exc:  # no connection, a timeout
            raise StoreUnavailable(f"the object store could not be reached to {what}: "
                                   f"{exc}") from exc

    def ensure_bucket(self) -> None:
        """Make the bucket when it does not exist (a new MinIO); one that exists, or that
        these credentials may not make, is left as it is."""
        from botocore.exceptions import ClientError

        try:
            with self._calling("find the bucket"):
                self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                raise
            with self._calling("make the bucket"):
                self.client.create_bucket(Bucket=self.bucket)

    def put(self, relative: str, path: str | Path, media_type: str) -> None:
        """Upload a local file as ``relative`` (replacing the object there)."""
        with self._calling("store an artifact"), open(path, "rb") as f:
            self.client.put_object(Bucket=self.bucket, Key=self.key(relative), Body=f,
                                   ContentType=media_type)

    def size(self, relative: str) -> int | None:
        """The object's size, or None when there is none."""
        from botocore.exceptions import ClientError

        try:
            with self._calling("look up an artifact"):
                head = self.client.head_object(Bucket=self.bucket, Key=self.key(relative))
        except ClientError:
            return None
        return int(head["ContentLength"])

    def fetch(self, relative: str) -> Path:
        """A local copy of the object (the cache's, when its ETag still matches)."""
        from core.store.artifacts import UnsafePath

        target = (self.cache / relative).resolve()
        if not target.is_relative_to(self.cache.resolve()):
            raise UnsafePath(f"{relative!r} escapes the cache")
        with self._calling("read an artifact"):
            etag = self.client.head_object(Bucket=self.bucket,
                                           Key=self.key(relative))["ETag"].strip('"')
        stamp = target.with_name(f".{target.name}.etag")
        if target.is_file() and stamp.is_file() and stamp.read_text() == etag:
            return target
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with self._calling("read an artifact"), os.fdopen(fd, "wb") as f:
                self.client.download_fileobj(self.bucket, self.key(relative), f)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        stamp.write_text(etag)
        return target

    def delete(self, relative: str) -> None:
        with self._calling("delete an artifact"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(relative))
        for p in ((self.cache / relative), (self.cache / relative).with_name(
                f".{Path(relative).name}.etag")):
            with contextlib.suppress(OSError):
                p.unlink()

    def get_url(self, relative: str, *, filename: str, media_type: str) -> str:
        """A URL that downloads the object for ``url_ttl_s`` seconds, as an attachment."""
        return str(self.signer.generate_presigned_url("get_object", Params={
            "Bucket": self.bucket, "Key": self.key(relative),
            "ResponseContentType": media_type,
            "ResponseContentDisposition": f'attachment; filename="{filename}"'},
            ExpiresIn=self.url_ttl_s))

    def put_url(self, relative: str, *, media_type: str, size: int) -> str:
        """A URL that uploads the object, of exactly ``size`` bytes (the length is
        signed), for ``url_ttl_s`` seconds."""
        return str(self.signer.generate_presigned_url("put_object", Params={
            "Bucket": self.bucket, "Key": self.key(relative), "ContentType": media_type,
            "ContentLength": size}, ExpiresIn=self.url_ttl_s))


def register(root: Path, store: ObjectStore) -> ObjectStore:
    """Back the artifact root ``root`` with ``store`` (the first one registered stays)."""
    with _LOCK:
        return _STORES.setdefault(root.resolve(), store)


def for_root(root: Path) -> ObjectStore | None:
    """The object store backing artifact root ``root``, or None (files)."""
    if not _STORES:
        return None
    return _STORES.get(root.resolve())
