"""H11 peers: multiprocessing.Pipe and multiprocessing.Queue between two processes. A
child process sends N messages of SIZE bytes (bytes objects, each with its index in
the first 8 bytes) with conn.send / q.put; the parent receives them, checks every index
and the byte count, and reports msgs/s and MB/s, timed from the first message after a
ready message to the last."""
import multiprocessing
import struct
import time

from report import check, parse, report


def message(i, size):
    head = struct.pack("<q", i)
    return (head + b"x" * max(0, size - 8))[:size] if size >= 8 else b"x" * size


def pipe_sender(conn, n, size):
    conn.send(message(-1, size))
    for i in range(n):
        conn.send(message(i, size))
    conn.close()


def queue_sender(q, n, size):
    q.put(message(-1, size))
    for i in range(n):
        q.put(message(i, size))
    q.close()
    q.join_thread()


def measure(n, size, receive):
    ready = receive()
    check(len(ready) == size, "ready message size", len(ready), size)
    t0 = time.perf_counter()
    in_order = 0
    nbytes = 0
    for i in range(n):
        m = receive()
        if size < 8 or struct.unpack_from("<q", m)[0] == i:
            in_order += 1
        nbytes += len(m)
    t1 = time.perf_counter()
    check(in_order == n, "messages in order", in_order, n)
    check(nbytes == n * size, "bytes received", nbytes, n * size)
    report("msgs_per_s", n / (t1 - t0))
    report("mb_per_s", nbytes / 1e6 / (t1 - t0))


def main():
    args = parse(variant="pipe", size=64, n=200_000)
    if args.variant == "queue":
        q = multiprocessing.Queue(1024)
        p = multiprocessing.Process(target=queue_sender, args=(q, args.n, args.size))
        p.start()
        measure(args.n, args.size, q.get)
    else:
        mine, theirs = multiprocessing.Pipe()
        p = multiprocessing.Process(target=pipe_sender, args=(theirs, args.n, args.size))
        p.start()
        theirs.close()
        measure(args.n, args.size, mine.recv)
    p.join()
    check(p.exitcode == 0, "child exit code", p.exitcode, 0)


if __name__ == "__main__":
    main()
