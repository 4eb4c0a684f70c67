"""Serving etcd's gRPC services from plain servicer objects.

The handlers are built from the service descriptors in our ``rpc.proto``
rather than from generated ``add_*Servicer_to_server`` helpers, for one reason:
what happens to bytes that are not a valid message.  Generated code raises in
the deserializer, which grpc logs as a traceback and answers with an opaque
"Exception deserializing request!".  Here a bad payload becomes a
``Malformed`` value that never reaches the servicer (so never the store) and
is answered like grpc-go answers it for real etcd: status INTERNAL, message
"grpc: error unmarshalling request: ...".

Every method a servicer defines (by its rpc name, e.g. ``Range``) is served;
the others answer UNIMPLEMENTED.  Store errors become etcd's status code and
exact message (``StoreError.grpc_code`` / ``.text``), which etcdctl prints as
"Error: <message>".
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import grpc.aio

from skiff.etcd_protos import load
from skiff.store.errors import StoreError

log = logging.getLogger(__name__)

_rpc: Any = load().rpc_pb2

#: The proto package of every etcd service.
PACKAGE = "etcdserverpb"


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request payload that did not parse; ``text`` is the status message to send."""

    text: str


class MalformedRequest(Exception):
    """Raised while iterating a request stream that carried a Malformed message."""


class RequestError(Exception):
    """A request the facade itself refuses, with etcd's status code name and message."""

    def __init__(self, grpc_code: str, text: str) -> None:
        super().__init__(text)
        self.grpc_code = grpc_code
        self.text = text


def _decoder(message_class: Any) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except Exception as exc:  # protobuf's DecodeError, or anything a broken payload triggers
            return Malformed(f"grpc: error unmarshalling request: {exc}")

    return decode


def _encode(message: Any) -> bytes:
    return bytes(message.SerializeToString())


async def abort(context: grpc.aio.ServicerContext, grpc_code: str, text: str) -> NoReturn:
    await context.abort(getattr(grpc.StatusCode, grpc_code, grpc.StatusCode.UNKNOWN), text)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


async def _translate(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    """Abort the call for ``exc`` the way etcd would; re-raise what is not ours to translate."""
    if isinstance(exc, StoreError | RequestError):
        await abort(context, exc.grpc_code, exc.text)
    if isinstance(exc, MalformedRequest):
        await abort(context, "INTERNAL", str(exc))
    if isinstance(exc, grpc.aio.AbortError) or not isinstance(exc, Exception):
        raise exc
    log.exception("facade: unexpected error in %s", context)
    await abort(context, "UNKNOWN", f"etcdserver: {type(exc).__name__}: {exc}")


async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream that raises MalformedRequest instead of yielding a bad message."""
    async for request in requests:
        if isinstance(request, Malformed):
            raise MalformedRequest(request.text)
        yield request


Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
ServerStream = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
Bidi = Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], Awaitable[None]]


def _unary(impl: Unary) -> Unary:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            await abort(context, "INTERNAL", request.text)
        try:
            return await impl(request, context)
        except BaseException as exc:
            await _translate(context, exc)

    return handle


def _server_stream(impl: ServerStream) -> ServerStream:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, Malformed):
            await abort(context, "INTERNAL", request.text)
        try:
            async for response in impl(request, context):
                yield response
        except BaseException as exc:
            await _translate(context, exc)

    return handle


def _bidi(impl: Bidi) -> Bidi:
    async def handle(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        try:
            await impl(checked(requests), context)
        except BaseException as exc:
            await _translate(context, exc)

    return handle


def service_handler(service: str, servicer: object) -> grpc.GenericRpcHandler:
    """The generic handler serving ``etcdserverpb.<service>`` with ``servicer``'s methods."""
    descriptor = _rpc.DESCRIPTOR.services_by_name[service]
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in descriptor.methods:
        impl = getattr(servicer, method.name, None)
        if impl is None:
            continue
        decode = _decoder(getattr(_rpc, method.input_type.name))
        if method.client_streaming and method.server_streaming:
            handler = grpc.stream_stream_rpc_method_handler(
                _bidi(impl), request_deserializer=decode, response_serializer=_encode
            )
        elif method.server_streaming:
            handler = grpc.unary_stream_rpc_method_handler(
                _server_stream(impl), request_deserializer=decode, response_serializer=_encode
            )
        elif not method.client_streaming:
            handler = grpc.unary_unary_rpc_method_handler(
                _unary(impl), request_deserializer=decode, response_serializer=_encode
            )
        else:  # pragma: no cover - etcd has no client-streaming-only rpc
            raise ValueError(f"unsupported rpc shape for {method.full_name}")
        handlers[method.name] = handler
    return grpc.method_handlers_generic_handler(f"{PACKAGE}.{service}", handlers)
