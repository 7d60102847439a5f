"""The HTTP core of ``StarqClient``: one request with its retries, a streamed request, and the mapping of httpx's
errors and the server's error answers to Starq's error classes, in one place. Which requests may be retried is
the client's to say (``Safety``); the rules are in ``client.py``'s docstring.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Self, TypedDict, Unpack

import anyio
import httpx

from .backoff import RetryPolicy
from .errors import ServerUnreachable, StarqError, UnexpectedResponse, error_from_response
from .protocol import DEFAULT_TIMEOUT, DEFAULT_URL

log = logging.getLogger("starq.worker_kit.client")


class Safety(enum.Enum):
    """Whether a request may be repeated when its answer is lost."""

    IDEMPOTENT = "idempotent"  # a repeat has the same effect and answer: retry lost answers and 503s
    UNSENT_ONLY = "unsent_only"  # retry only when the request cannot have reached the server


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


class ClientOptions(TypedDict, total=False):
    """How a client talks to its server: the keywords of ``StarqClient(url, api_key, **options)``, the async and
    the blocking one alike.

    Attributes:
        timeout: seconds to wait for connecting and for each answer (a long-poll claim adds its ``block_ms``);
            default ``protocol.DEFAULT_TIMEOUT``.
        retry: how lost answers are retried (``client.py``'s docstring says which requests are); default
            ``RetryPolicy()``.
        transport: an httpx transport to use instead of the network (tests, ASGI apps).
    """

    timeout: float
    retry: RetryPolicy | None
    transport: httpx.AsyncBaseTransport | None


CLIENT_OPTIONS = tuple(ClientOptions.__annotations__)


def check_keywords(given: Mapping[str, Any], names: Sequence[str], function: str) -> None:
    """Refuses a keyword that ``names`` lacks, as Python refuses one a signature lacks: options taken as
    ``**options: Unpack[SomeTypedDict]`` are checked by a type checker, but at run time would take any name."""
    unknown = [name for name in given if name not in names]
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")


class HttpCore:
    """The connection pool, the base URL and the API key, and how a request is sent and retried."""

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None, **options: Unpack[ClientOptions]) -> None:
        check_keywords(options, CLIENT_OPTIONS, f"{type(self).__qualname__}.__init__")
        self.url = url.rstrip("/")
        self.timeout = options.get("timeout", DEFAULT_TIMEOUT)
        self.retry = options.get("retry") or RetryPolicy()
        headers = {"User-Agent": "starq-worker-kit", "Accept": "application/json"}
        if api_key:
            headers["X-API-Key"] = api_key
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=self.timeout, transport=options.get("transport")
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    # -- the request core -----------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        safety: Safety = Safety.UNSENT_ONLY,
        timeout: httpx.Timeout | float | None = None,
    ) -> Any:
        """Sends one request and returns its decoded JSON answer, retrying as ``safety`` allows.

        Raises:
            StarqError: the subclass named by the server's ``error`` code, or ``ServerUnreachable``.
        """
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method,
                    path,
                    json=json,
                    content=content,
                    params=params,
                    headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                unreachable = self._unreachable(exc, method, path)
                if isinstance(exc, httpx.UnsupportedProtocol) or (
                    unreachable.maybe_processed and safety is not Safety.IDEMPOTENT
                ):
                    raise unreachable from exc
                error: StarqError = unreachable
            else:
                if response.status_code < 400:
                    return self._decode(response)
                error = error_from_response(response.status_code, self._decode_error(response))
                if response.status_code != 503 or safety is not Safety.IDEMPOTENT:
                    raise error
            attempt += 1
            if attempt >= self.retry.attempts:
                raise error
            pause = self.retry.backoff.delay(attempt - 1)
            log.debug("%s %s: %s; retry %d in %.2f s", method, path, error.detail, attempt, pause)
            await anyio.sleep(pause)  # not trio.sleep: the client also runs under asyncio, as httpx does

    async def open_stream(
        self, path: str, *, headers: Mapping[str, str] | None = None, read_timeout: float | None = None
    ) -> httpx.Response:
        """Sends ``GET path`` for a stream of server-sent events, once (the caller decides about retries), and
        returns the response as soon as its head has arrived; the caller reads it and must ``aclose()`` it.
        ``read_timeout``: the longest silence between two reads before the stream counts as broken.

        Raises:
            StarqError: the server's error answer, ``ServerUnreachable``, or ``UnexpectedResponse`` for an answer
                that is not an event stream.
        """
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        request = self._http.build_request("GET", path, headers=headers, timeout=timeout)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._unreachable(exc, "GET", path) from exc
        if response.status_code < 400 and response.headers.get("content-type", "").startswith("text/event-stream"):
            return response
        try:
            await response.aread()
        except httpx.TransportError as exc:
            raise self._unreachable(exc, "GET", path) from exc
        finally:
            await response.aclose()
        if response.status_code < 400:
            raise UnexpectedResponse(
                f"HTTP {response.status_code} answer to GET {path} is not an event stream", status=response.status_code
            )
        raise error_from_response(response.status_code, self._decode_error(response))

    def _unreachable(self, exc: httpx.TransportError, method: str, path: str) -> ServerUnreachable:
        """What a request that got no answer raises: ``maybe_processed`` unless it cannot have been sent."""
        if isinstance(exc, _NOT_SENT):
            return ServerUnreachable(f"cannot reach {self.url}: {_describe(exc)}")
        if isinstance(exc, httpx.UnsupportedProtocol):
            return ServerUnreachable(f"bad server URL {self.url!r}: {_describe(exc)}")
        return ServerUnreachable(
            f"lost the answer from {self.url} to {method} {path}: {_describe(exc)}", maybe_processed=True
        )

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise UnexpectedResponse(
                f"HTTP {response.status_code} answer is not JSON", status=response.status_code
            ) from exc

    @staticmethod
    def _decode_error(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None
