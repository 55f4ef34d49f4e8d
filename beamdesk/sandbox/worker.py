"""A reader worker: parses one proposal's files for the server, inside a sandbox.

Started by :mod:`beamdesk.sandbox.pool` as ``python -I -m beamdesk.sandbox.worker FOLDER FD
MEMORY``. It limits its own address space, moves into the proposal folder (so relative
names libhdf5 resolves against the working directory stay inside it), and then answers
requests on the socket ``FD`` one at a time: ``{"op": name, "args": {...}}`` in, one of
``{"ok": value}``, ``{"reply": ...}``, ``{"stream": ...}`` + ``{"chunk": bytes}``… +
``{"end": true}``, or ``{"error": {"status", "detail"}}`` out.

A crash or a hang here costs only this process: the pool kills and replaces it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from beamdesk.errors import BeamDeskError
from beamdesk.h5.api import Reply, Stream
from beamdesk.h5.opener import ProposalFiles
from beamdesk.sandbox import codec
from beamdesk.sandbox.operations import OPERATIONS

MAX_REQUEST_BYTES = 64 * 2**20


def _limit_resources(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, hard), min(512, hard)))


def _error(status: int, detail: str) -> dict[str, Any]:
    return {"error": {"status": status, "detail": detail}}


def _answer(sock: socket.socket, result: Any) -> None:
    if isinstance(result, Reply):
        codec.send(
            sock,
            {
                "reply": {
                    "body": result.body,
                    "media_type": result.media_type,
                    "headers": result.headers,
                }
            },
        )
    elif isinstance(result, Stream):
        codec.send(sock, {"stream": {"media_type": result.media_type, "headers": result.headers}})
        for chunk in result.chunks:
            codec.send(sock, {"chunk": chunk})
        codec.send(sock, {"end": True})
    else:
        codec.send(sock, {"ok": result})


def serve(sock: socket.socket, folder: Path) -> None:
    files = ProposalFiles(folder)
    codec.send(sock, {"ready": os.getpid()})
    while True:
        try:
            request = codec.receive(sock, MAX_REQUEST_BYTES)
        except EOFError:
            return
        try:
            operation = OPERATIONS[request["op"]]
            _answer(sock, operation(files, **request.get("args", {})))
        except BeamDeskError as exc:
            codec.send(sock, _error(exc.status, exc.detail))
        except MemoryError:
            codec.send(
                sock,
                _error(
                    413,
                    "Reading this needs more memory than one request "
                    "may use: choose a smaller selection.",
                ),
            )
        except OSError:
            # libhdf5 reports a damaged file lazily, wherever it is read, as an OSError in
            # its own words (h5py's other errors for such files are translated where they
            # are read, in beamdesk.h5): log it, answer in ours, naming nothing internal.
            traceback.print_exc(file=sys.stderr)
            codec.send(
                sock,
                _error(
                    422,
                    "The file could not be read: it is damaged or not in a form BeamDesk reads.",
                ),
            )
        except Exception:  # a fault of ours, not of the file: say so, and keep serving
            traceback.print_exc(file=sys.stderr)
            codec.send(sock, _error(500, "BeamDesk failed on this request; the error is logged."))


def main(argv: list[str]) -> None:
    folder, fd, memory = Path(argv[0]), int(argv[1]), int(argv[2])
    _limit_resources(memory)
    os.chdir(folder)
    sock = socket.socket(fileno=fd)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError):
        serve(sock, folder)


if __name__ == "__main__":
    main(sys.argv[1:])
