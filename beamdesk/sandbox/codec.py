"""The wire format between the server and its reader workers: JSON plus raw buffers.

A worker parses files an attacker wrote, so what it sends back is treated as hostile too:
never pickle (unpickling runs code). A message is a JSON document in which byte strings
and numeric arrays are replaced by references to buffers sent after it::

    u32 header length | header (JSON) | u32 buffer count | (u64 length | bytes) ...

Arrays travel with their dtype string and shape; object, void-less structured and other
types that cannot be rebuilt from bytes alone are refused on both sides.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import numpy as np
import orjson

MAX_HEADER_BYTES = 64 * 2**20
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class CodecError(ValueError):
    """A message that does not follow the wire format (a confused or hostile worker)."""


def _dtype_out(dtype: np.dtype) -> Any:
    if dtype.hasobject:
        raise CodecError("arrays of Python objects cannot be sent")
    return dtype.descr if dtype.fields is not None else dtype.str


def _tuples(descr: Any) -> Any:
    if isinstance(descr, list):
        return [
            tuple(_tuples(x) for x in item) if isinstance(item, list) else item for item in descr
        ]
    return descr


def _dtype_in(spec: Any) -> np.dtype:
    try:
        dtype = np.dtype(_tuples(spec) if isinstance(spec, list) else str(spec))
    except (TypeError, ValueError) as exc:
        raise CodecError(f"bad dtype {spec!r}") from exc
    if dtype.hasobject:
        raise CodecError("arrays of Python objects cannot be received")
    return dtype


def _pack(obj: Any, buffers: list[memoryview]) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (bytes, bytearray, memoryview)):
        buffers.append(memoryview(obj).cast("B"))
        return {"$b": len(buffers) - 1}
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        buffers.append(arr.reshape(-1).view(np.uint8).data if arr.size else memoryview(b""))
        return {"$nd": len(buffers) - 1, "dtype": _dtype_out(arr.dtype), "shape": list(arr.shape)}
    if isinstance(obj, np.generic):
        return obj.item() if not isinstance(obj, np.void) else _pack(np.asarray(obj), buffers)
    if isinstance(obj, dict):
        return {"$d": [[_pack(k, buffers), _pack(v, buffers)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_pack(x, buffers) for x in obj]
    raise CodecError(f"cannot send a {type(obj).__name__}")


def _unpack(obj: Any, buffers: list[bytearray]) -> Any:
    if isinstance(obj, list):
        return [_unpack(x, buffers) for x in obj]
    if not isinstance(obj, dict):
        return obj
    try:
        if "$b" in obj:  # a bytearray: no copy of what may be megabytes
            return buffers[obj["$b"]]
        if "$nd" in obj:
            dtype = _dtype_in(obj["dtype"])
            shape = tuple(int(n) for n in obj["shape"])
            raw = buffers[obj["$nd"]]
            count = int(np.prod(shape, dtype=np.int64))
            if len(raw) != count * dtype.itemsize:
                raise CodecError("array buffer of the wrong length")
            return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)
        if "$d" in obj:
            return {_unpack(k, buffers): _unpack(v, buffers) for k, v in obj["$d"]}
    except (IndexError, KeyError, TypeError) as exc:
        raise CodecError("malformed message") from exc
    raise CodecError("malformed message")


def send(sock: socket.socket, obj: Any) -> None:
    buffers: list[memoryview] = []
    header = orjson.dumps(_pack(obj, buffers))
    parts: list[bytes | memoryview] = [_U32.pack(len(header)), header, _U32.pack(len(buffers))]
    for buf in buffers:
        parts += [_U64.pack(buf.nbytes), buf]
    for part in parts:
        sock.sendall(part)


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("the other side closed the connection")
        got += k
    return buf


def receive(sock: socket.socket, max_bytes: int) -> Any:
    """One message; CodecError if it is malformed or larger than ``max_bytes``."""
    (size,) = _U32.unpack(_recv_exact(sock, 4))
    if size > MAX_HEADER_BYTES:
        raise CodecError("message header too large")
    try:
        header = orjson.loads(bytes(_recv_exact(sock, size)))
    except orjson.JSONDecodeError as exc:
        raise CodecError("message header is not JSON") from exc
    (count,) = _U32.unpack(_recv_exact(sock, 4))
    if count > 100_000:
        raise CodecError("too many buffers")
    buffers: list[bytearray] = []
    total = 0
    for _ in range(count):
        (length,) = _U64.unpack(_recv_exact(sock, 8))
        total += length
        if total > max_bytes:
            raise CodecError("message larger than allowed")
        buffers.append(_recv_exact(sock, length))
    return _unpack(header, buffers)
