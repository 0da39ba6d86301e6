"""The `null` responder: a trivial SMPP peer (acks and receipts from pre-encoded bytes, no
store, no provider) that shows what the load generator itself reaches on this machine."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import struct

HDR = struct.Struct(">IIII")


_ids = itertools.count(1)  # one counter for every connection: ids stay unique


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    receipt_tail = (
        b" sub:001 dlvrd:001 submit date:2601010000 done date:2601010000 stat:DELIVRD err:000 text:x"
    )
    try:
        while True:
            length, cmd, _, seq = HDR.unpack(await reader.readexactly(16))
            if length > 16:
                await reader.readexactly(length - 16)
            if cmd in (0x01, 0x02, 0x09):
                body = b"null\0"
                writer.write(HDR.pack(16 + len(body), cmd | 0x80000000, 0, seq) + body)
            elif cmd == 0x04:
                counter = next(_ids)
                mid = b"%010d" % counter
                writer.write(HDR.pack(27, 0x80000004, 0, seq) + mid + b"\0")
                text = b"id:" + mid + receipt_tail
                body = (
                    b"\0\x01\x01380500000000\0\x05\x00BENCH\0\x04\x00\x00\0\0\x00\x00\x00\x00"
                    + bytes((len(text),))
                    + text
                )
                writer.write(HDR.pack(16 + len(body), 0x05, 0, 0x40000000 + counter % 0x3FFFFFFF) + body)
            elif cmd in (0x06, 0x15):
                writer.write(HDR.pack(16, cmd | 0x80000000, 0, seq))
                if cmd == 0x06:
                    break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    asyncio.run(serve(p.parse_args().port))


if __name__ == "__main__":
    main()
