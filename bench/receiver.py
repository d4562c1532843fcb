"""A slow webhook receiver for the benchmark: answers every POST 204 after a delay.

    python -m bench.receiver PORT DELAY_SECONDS COUNT_FILE

It runs in a process of its own, so its CPU is not the service's, and writes how many
notifications it received to COUNT_FILE when it is stopped (SIGTERM or SIGINT).
"""

import asyncio
import signal
import sys
from pathlib import Path


async def serve(port: int, delay: float) -> int:
    """Answer until stopped; return how many notifications came."""
    received = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                received += 1
                await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:  # stopped with answers still waiting: they go unsent
            pass
        finally:
            writer.close()

    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    server = await asyncio.start_server(answer, "127.0.0.1", port)
    async with server:
        await stopped.wait()
    return received


if __name__ == "__main__":
    count = asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2])))
    Path(sys.argv[3]).write_text(str(count))
