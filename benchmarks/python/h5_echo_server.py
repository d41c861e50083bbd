"""H5 peer: the canonical asyncio streams echo server. Prints "PORT <n>", serves until killed."""
import asyncio
import resource

from report import parse


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(4096)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


def raise_fd_limit():
    """Soft RLIMIT_NOFILE up to the hard limit: 1,000 connections need more than 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(port):
    raise_fd_limit()
    # The backlog of the raw servers (1024; asyncio's default is 100): 1,000 clients
    # connect at once.
    server = await asyncio.start_server(echo, "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(parse(port=0).port))
