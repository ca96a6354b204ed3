"""A thin, typed REST client over the official `kubernetes` client: JSON in, JSON out.

The generated API classes are not used on purpose: every call here is one HTTP request on one
resource path, bodies are plain dicts (what the pure builders in `stowage.objects` return), and
API errors become the few exceptions the reconcilers act on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes

from stowage.kube.resources import Resource
from stowage.metrics import API_REQUESTS

Json = dict[str, Any]

FIELD_MANAGER = "stowage"
JSON_CONTENT = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class ApiError(Exception):
    """A request the API server refused; `reason` is the Status reason (e.g. AlreadyExists)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFoundError(ApiError):
    pass


class AlreadyExistsError(ApiError):
    pass


class ConflictError(ApiError):
    """409 other than AlreadyExists: a stale resourceVersion or a failed precondition."""


class InvalidError(ApiError):
    """422: the object is invalid, or changes a field that is immutable."""


def error_from_response(status: int, payload: bytes) -> ApiError:
    try:
        body = json.loads(payload)
    except ValueError:
        body = {}
    reason = str(body.get("reason", "")) if isinstance(body, dict) else ""
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    if status == 404:
        return NotFoundError(status, reason or "NotFound", message)
    if status == 409:
        kind = AlreadyExistsError if reason == "AlreadyExists" else ConflictError
        return kind(status, reason or "Conflict", message)
    if status == 422:
        return InvalidError(status, reason or "Invalid", message)
    return ApiError(status, reason or "Error", message or payload[:200].decode(errors="replace"))


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate (also handed to kopf for its watches)."""

    configuration: kubernetes.client.Configuration

    @classmethod
    def load(cls, kubeconfig: Path | None, pool_size: int) -> Connection:
        configuration = kubernetes.client.Configuration()
        if kubeconfig is not None:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), client_configuration=configuration
            )
        else:
            try:
                kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
        configuration.connection_pool_maxsize = pool_size
        return cls(configuration)

    @property
    def bearer_token(self) -> str | None:
        header = self.configuration.get_api_key_with_prefix(
            "BearerToken"
        ) or self.configuration.get_api_key_with_prefix("authorization")
        if not header:
            return None
        return str(header).split(" ", 1)[-1]


class Kube:
    """Blocking calls, each one request; safe to share between threads."""

    def __init__(self, connection: Connection, timeout: float) -> None:
        self._api = kubernetes.client.ApiClient(connection.configuration)
        self._timeout = timeout

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _send(
        self,
        method: str,
        resource: Resource,
        path: str,
        *,
        query: Mapping[str, str] | None,
        body: Json | None,
        content_type: str,
        timeout: float,
    ) -> Any:
        """The response, its body not read yet; ApiError unless the status is 2xx."""
        API_REQUESTS.labels(method, resource.plural).inc()
        headers = {"Accept": JSON_CONTENT}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, serialized, post = self._api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(
            method, url, headers, serialized, post, _request_timeout=timeout
        )
        if not 200 <= response.status < 300:
            raise error_from_response(response.status, response.read())  # type: ignore[no-untyped-call]
        return response

    def request(
        self,
        method: str,
        resource: Resource,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Json | None = None,
        content_type: str = JSON_CONTENT,
    ) -> Json:
        response = self._send(
            method,
            resource,
            path,
            query=query,
            body=body,
            content_type=content_type,
            timeout=self._timeout,
        )
        payload: bytes = response.read()
        decoded: Json = json.loads(payload) if payload else {}
        return decoded

    def watch(
        self, resource: Resource, *, label_selector: str = "", seconds: int = 300
    ) -> Iterator[Json]:
        """The watch events of the resource (all namespaces) as they come, until the API
        server ends the watch after `seconds`; the first events are the existing objects."""
        query = {"watch": "true", "timeoutSeconds": str(seconds)}
        if label_selector:
            query["labelSelector"] = label_selector
        response = self._send(
            "GET",
            resource,
            resource.collection(None),
            query=query,
            body=None,
            content_type=JSON_CONTENT,
            timeout=seconds + self._timeout,
        )
        pending = b""
        for chunk in response.response.stream(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> Json | None:
        try:
            return self.request("GET", resource, resource.item(name, namespace))
        except NotFoundError:
            return None

    def list(
        self, resource: Resource, *, namespace: str | None = None, label_selector: str = ""
    ) -> list[Json]:
        query = {"labelSelector": label_selector} if label_selector else None
        items: list[Json] = self.request(
            "GET", resource, resource.collection(namespace), query=query
        ).get("items", [])
        return items

    def create(self, resource: Resource, body: Json) -> Json:
        """Raises AlreadyExistsError when the name is taken."""
        namespace = body.get("metadata", {}).get("namespace")
        return self.request("POST", resource, resource.collection(namespace), body=body)

    def apply(self, resource: Resource, body: Json, *, subresource: str = "") -> Json:
        """Server-side apply as field manager `stowage`, taking over conflicting fields."""
        metadata = body["metadata"]
        path = resource.item(metadata["name"], metadata.get("namespace"))
        return self.request(
            "PATCH",
            resource,
            f"{path}/{subresource}" if subresource else path,
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=body,
            content_type=APPLY_PATCH,
        )

    def merge_patch(
        self,
        resource: Resource,
        name: str,
        patch: Json,
        *,
        namespace: str | None = None,
        subresource: str = "",
    ) -> Json:
        path = resource.item(name, namespace)
        return self.request(
            "PATCH",
            resource,
            f"{path}/{subresource}" if subresource else path,
            query={"fieldManager": FIELD_MANAGER},
            body=patch,
            content_type=MERGE_PATCH,
        )

    def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        uid: str | None = None,
    ) -> bool:
        """Deletes (only the object with that uid, if given); False when it was already gone."""
        body: Json = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", resource, resource.item(name, namespace), body=body)
        except NotFoundError:
            return False
        return True
