"""A thin, typed wrapper around the `cs` CloudStack client: POST only, no trace output, one error
type with one-line messages, and retries (with backoff) only on connection errors of calls that are
safe to repeat."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from cs import CloudStack, CloudStackException

JsonObject = dict[str, Any]
ParamValue = str | int | bool | None

DEFAULT_TIMEOUT = 30.0
# addHost waits for the agent to connect; CloudStack itself allows several minutes for that.
ADD_HOST_TIMEOUT = 900.0
PAGE_SIZE = 500  # default.page.size's default, the most BaseListCmd allows unless configured
# BaseListCmd.getPageSize when a zone lowered default.page.size: page with that size instead.
_PAGE_SIZE_LIMIT = re.compile(r"Page size can't exceed max allowed page size value: (\d+)")
RETRIES = 3
RETRY_BACKOFF = 1.0  # seconds before the first retry; doubles for each further one


class ApiError(Exception):
    """A failed API call, as one line: the command and what CloudStack (or the network) said."""

    def __init__(self, command: str, message: str, code: int | None = None) -> None:
        self.command = command
        self.code = code
        self.message = message
        super().__init__(f"{command}: {message}")


class ConnectionFailedError(ApiError):
    """No answer at all: refused, dropped, or timed out."""


@dataclass(frozen=True)
class Credentials:
    """An API key pair. Never printed: the repr hides both values."""

    key: str = field(repr=False)
    secret: str = field(repr=False)


def java_url_encode(value: str) -> str:
    """`java.net.URLEncoder.encode(value, "UTF-8").replaceAll("\\+", "%20")`, which the management
    server applies to each value before checking a signature (ApiServer.verifyRequest): only
    letters, digits and `.-*_` stay as they are; `~` becomes %7E (Python's quote keeps it)."""
    return quote(value, safe="*").replace("~", "%7E")


def signature(params: Mapping[str, str], secret: str) -> str:
    """CloudStack's request signature: parameters sorted by name, `name=encoded value` joined
    with `&`, lower-cased, HMAC-SHA1 with the secret key, Base64."""
    text = "&".join(f"{name}={java_url_encode(params[name])}" for name in sorted(params))
    digest = hmac.new(secret.encode(), text.lower().encode(), hashlib.sha1).digest()
    return b64encode(digest).decode()


class _Signer(CloudStack):
    """`cs.CloudStack`, signing values exactly as the server encodes them (cs keeps `~` unencoded,
    which the server rejects)."""

    def _sign(self, data: dict[str, str]) -> None:
        if self.secret:
            data["signature"] = signature(data, self.secret)


def _error_of(command: str, exc: CloudStackException) -> ApiError:
    error = getattr(exc, "error", None)
    if isinstance(error, dict) and "errortext" in error:
        code = error.get("errorcode")
        number = code if isinstance(code, int) else None
        return ApiError(command, f"CloudStack error {code}: {error['errortext']}", number)
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return ApiError(
            command,
            f"HTTP {status} without a CloudStack answer (is the URL the API endpoint?)",
            status,
        )
    return ApiError(command, str(exc.args[0]) if exc.args else "unexpected answer")


class Client:
    """Calls one management server. `safe=True` marks calls that may be sent twice (reads,
    queryAsyncJobResult): only those are retried, and only when the connection failed."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = RETRIES,
        backoff: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = endpoint
        self._cs = _Signer(
            endpoint,
            key=credentials.key,
            secret=credentials.secret,
            method="post",  # GET would put the key and signature in URLs and access logs
            timeout=int(timeout),
            retry=0,  # retries are decided here, per call
            trace=False,
        )
        self._timeout = timeout
        self._retries = retries
        self._backoff = RETRY_BACKOFF if backoff is None else backoff
        self._sleep = sleep
        self._page_size = PAGE_SIZE

    def call(
        self,
        command: str,
        params: Mapping[str, ParamValue] | None = None,
        *,
        safe: bool,
        timeout: float | None = None,
    ) -> JsonObject:
        """The command's answer (the object under `<command>response`)."""
        args = {k: v for k, v in (params or {}).items() if v is not None}
        self._cs.timeout = max(1, math.ceil(timeout or self._timeout))
        attempt = 0
        while True:
            try:
                answer: Any = getattr(self._cs, command)(**args)
            except CloudStackException as exc:
                raise _error_of(command, exc) from None
            except requests.exceptions.ConnectionError as exc:
                attempt += 1
                if not safe or attempt > self._retries:
                    raise ConnectionFailedError(
                        command, self._connection_message(exc, safe)
                    ) from None
                self._sleep(self._backoff * 2 ** (attempt - 1))
                continue
            except requests.exceptions.Timeout:
                raise ConnectionFailedError(
                    command,
                    f"no answer from {self.endpoint} within {self._cs.timeout} s"
                    + ("" if safe else "; it may still be running: check before retrying"),
                ) from None
            except requests.exceptions.RequestException as exc:
                raise ConnectionFailedError(
                    command, f"request failed: {type(exc).__name__}"
                ) from None
            if not isinstance(answer, dict):
                raise ApiError(command, "unexpected answer (not a JSON object)")
            return answer

    def _connection_message(self, exc: Exception, safe: bool) -> str:
        text = str(exc)
        what = (
            "connection dropped"
            if "aborted" in text or "Disconnected" in text
            else "cannot connect"
        )
        if safe:
            return f"{what} ({self.endpoint}), {self._retries + 1} attempts"
        return f"{what} ({self.endpoint}); not retried: it may have taken effect, check before retrying"

    def list_all(
        self, command: str, key: str, params: Mapping[str, ParamValue] | None = None
    ) -> list[JsonObject]:
        """Every item of a list command, page by page (the items are under `key`)."""
        items: list[JsonObject] = []
        page = 1
        while True:
            size = self._page_size
            try:
                answer = self.call(
                    command, {**(params or {}), "page": page, "pagesize": size}, safe=True
                )
            except ApiError as exc:
                limit = _PAGE_SIZE_LIMIT.search(exc.message) if exc.code == 431 else None
                if limit is None or not 0 < int(limit.group(1)) < size:
                    raise
                self._page_size = int(limit.group(1))
                items, page = [], 1
                continue
            batch = answer.get(key, [])
            if not isinstance(batch, list):
                raise ApiError(command, f"unexpected answer ({key} is not a list)")
            items += [item for item in batch if isinstance(item, dict)]
            # count is the total (ListResponse), not the page's length; a page past the end has
            # no items.
            count = answer.get("count", 0)
            if not batch or len(batch) < size or len(items) >= int(count):
                return items
            page += 1
