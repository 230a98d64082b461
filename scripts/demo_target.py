"""A small leaky service for `scripts/demo`: an order book that keeps growing, a cache, a worker thread."""
import os
import sys
import threading


class Order:
    def __init__(self, i):
        self.id = i
        self.customer = "customer-%d" % (i % 997)
        self.lines = [("sku-%d" % (i * 7 + k), k + 1, 9.99 * (k + 1)) for k in range(3)]
        self.note = "order note %d" % i


ORDER_BOOK = {i: Order(i) for i in range(20000)}
CACHE = {("key", i): b"x" * 200 for i in range(5000)}


def worker(stop):
    scratch = [bytearray(1024) for _ in range(500)]
    stop.wait()
    return scratch


stop = threading.Event()
threading.Thread(target=worker, args=(stop,), name="worker-1", daemon=True).start()
print(os.getpid(), flush=True)
sys.stdin.read()
stop.set()
