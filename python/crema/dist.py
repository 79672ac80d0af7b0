"""crema.Dist: one rank of a data-parallel job (libcrema's rendezvous and
collectives), for front ends that drive training themselves (crema.spark)."""
import ctypes

import numpy as np

from ._capi import CremaError, check, encode, lib


class Dist:
    """Joins the job: rank of size, meeting at `address` ("host:port",
    served by rank 0 itself, or "file:///dir") with a secret every rank
    shares. Fails within timeout_ms naming the rank at fault."""

    def __init__(self, rank, size, address, secret, timeout_ms=30000):
        self._ptr = None
        p = ctypes.c_void_p()
        check(lib.crema_dist_open(int(rank), int(size), encode(address), encode(secret), int(timeout_ms),
                                  ctypes.byref(p)))
        self._ptr = p.value

    def _live(self):
        if not self._ptr:
            raise CremaError(3, "the rank has left the job (closed)", "INVALID")
        return self._ptr

    @property
    def rank(self):
        return lib.crema_dist_rank(self._live())

    @property
    def size(self):
        return lib.crema_dist_size(self._live())

    def allreduce(self, values):
        """The sum over every rank of a float array (a new float32 array)."""
        a = np.array(values, dtype=np.float32, copy=True).reshape(-1)
        check(lib.crema_dist_allreduce(self._live(), a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), a.size))
        return a.reshape(np.shape(values))

    def broadcast(self, data, root=0):
        """root's bytes (every rank passes a buffer of the same length)."""
        b = bytearray(data)
        buf = (ctypes.c_char * len(b)).from_buffer(b) if b else None
        check(lib.crema_dist_broadcast(self._live(), buf, len(b), int(root)))
        return bytes(b)

    def barrier(self):
        check(lib.crema_dist_barrier(self._live()))

    def close(self):
        p, self._ptr = self._ptr, None
        if p:
            lib.crema_dist_free(p)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
