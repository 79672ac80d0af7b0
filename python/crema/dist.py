"""crema.Dist: one rank of a data-parallel job (libcrema's rendezvous and
collectives), for front ends that drive training themselves (crema.spark)."""
import contextlib
import ctypes
import threading

import numpy as np

from ._capi import CremaError, check, encode, lib


class Dist:
    """Joins the job: rank of size, meeting at `address` ("host:port",
    served by rank 0 itself, or "file:///dir") with a secret every rank
    shares. Fails within timeout_ms naming the rank at fault."""

    def __init__(self, rank, size, address, secret, timeout_ms=30000):
        self._ptr = None
        # One call into libcrema at a time (ctypes releases the GIL): close()
        # from another thread waits for a collective in flight.
        self._lock = threading.RLock()
        p = ctypes.c_void_p()
        check(lib.crema_dist_open(int(rank), int(size), encode(address), encode(secret), int(timeout_ms),
                                  ctypes.byref(p)))
        self._ptr = p.value

    def _live(self):
        if not self._ptr:
            raise CremaError(3, "the rank has left the job (closed)", "INVALID")
        return self._ptr

    @contextlib.contextmanager
    def _hold(self):
        with self._lock:
            yield self._live()

    @property
    def rank(self):
        with self._hold() as p:
            return lib.crema_dist_rank(p)

    @property
    def size(self):
        with self._hold() as p:
            return lib.crema_dist_size(p)

    def allreduce(self, values):
        """The sum over every rank of a float array (a new float32 array)."""
        a = np.array(values, dtype=np.float32, copy=True).reshape(-1)
        with self._hold() as p:
            check(lib.crema_dist_allreduce(p, a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), a.size))
        return a.reshape(np.shape(values))

    def broadcast(self, data, root=0):
        """root's bytes (every rank passes a buffer of the same length)."""
        b = bytearray(data)
        buf = (ctypes.c_char * len(b)).from_buffer(b) if b else None
        with self._hold() as p:
            check(lib.crema_dist_broadcast(p, buf, len(b), int(root)))
        return bytes(b)

    def barrier(self):
        with self._hold() as p:
            check(lib.crema_dist_barrier(p))

    def close(self):
        lock = self.__dict__.get("_lock")
        with lock if lock is not None else contextlib.nullcontext():
            p, self._ptr = self._ptr, None
            if p:
                lib.crema_dist_free(p)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
