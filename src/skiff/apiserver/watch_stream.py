"""Writing a watch to the client: chunked HTTP/1.1, one compact JSON event per line.

The registry yields ready-made event lines (each serialised once in the watch
cache, the same bytes for every watcher); here they are written as they come,
each flushed at once.  The stream ends cleanly (chunked terminator) when
``timeoutSeconds`` passes — or, without it, after a server default between 30
and 60 minutes as kube-apiserver's ``--min-request-timeout`` logic picks — or
when the registry's iterator ends.  Errors after the response has started
become an ``ERROR`` event carrying the Status, as upstream's watch server
does; a client that goes away cancels the handler, and ``aclosing`` releases
the registry's watcher.

For ``as=Table`` (``kubectl get -w``) and PartialObjectMetadata watches each
ADDED/MODIFIED/DELETED event's object is converted; BOOKMARK and ERROR events
pass through untouched.  Table column definitions go only in the first event.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import orjson
from aiohttp import web

from skiff.api.status import ApiError, internal_error
from skiff.registry.watch_events import error_line

log = logging.getLogger(__name__)

#: kube-apiserver's --min-request-timeout default; a watch without timeoutSeconds lasts 1-2x this.
MIN_REQUEST_TIMEOUT_S = 1800.0

LineTransform = Callable[[bytes], bytes]


def default_timeout() -> float:
    return MIN_REQUEST_TIMEOUT_S * (1 + random.random())


async def stream(
    request: web.Request,
    lines: AsyncIterator[bytes],
    timeout_s: float | None,
    transform: LineTransform | None = None,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json", **(headers or {})})
    response.enable_chunked_encoding()
    await response.prepare(request)
    deadline = timeout_s if timeout_s is not None else default_timeout()
    try:
        async with aclosing(lines) as events:  # type: ignore[type-var]
            async with asyncio.timeout(deadline):
                async for line in events:
                    await response.write(transform(line) if transform else line)
    except TimeoutError:
        pass
    except ApiError as err:
        await response.write(error_line(err.to_dict()))
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as err:  # a bug in a watch must end one stream, not the server
        log.exception("watch on %s failed", request.path)
        await response.write(error_line(internal_error(type(err).__name__).to_dict()))
    await response.write_eof()
    return response


class EventObjectTransform:
    """Applies ``convert(obj, first)`` to the object of each ADDED/MODIFIED/DELETED event line."""

    def __init__(self, convert: Callable[[dict[str, object], bool], object]) -> None:
        self._convert = convert
        self._first = True

    def __call__(self, line: bytes) -> bytes:
        event = orjson.loads(line)
        if event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
            return line
        obj = event.get("object")
        if not isinstance(obj, dict):
            return line
        converted = self._convert(obj, self._first)
        self._first = False
        return orjson.dumps({"type": event["type"], "object": converted}) + b"\n"
