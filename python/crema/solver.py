"""crema.Solver: Caffe's Solver over libcrema (pycaffe's get_solver).

A Solver and its nets share one lock (see crema.net): a step in one thread
and a forward of solver.net in another run one after the other."""
import contextlib
import ctypes
import threading

from ._capi import CremaError, check, encode_path, lib
from .net import Net


class _SolverHandle:
    """Owns one crema_solver*; the Nets borrowed from it keep it alive.
    `lock` is held around every call into libcrema for it or its nets."""

    def __init__(self, ptr):
        self.ptr = ptr
        self.lock = threading.RLock()

    def __del__(self):
        ptr, self.ptr = self.ptr, None
        if ptr:
            lib.crema_solver_free(ptr)


class Solver:
    """The solver of a solver prototxt: its train net (`net`) and test nets
    (`test_nets`), built as Caffe builds them, with the prototxt's `weights`
    loaded. Relative paths in the prototxt are relative to the working
    directory, as in Caffe. log=True prints Caffe's INFO lines to stderr.
    Free it with close() or a `with` block."""

    def __init__(self, solver_prototxt, log=False):
        self._h = None
        ptr = ctypes.c_void_p()
        check(lib.crema_solver_open(encode_path(solver_prototxt), 1 if log else 0, ctypes.byref(ptr)))
        self._h = _SolverHandle(ptr.value)
        self.net = Net._borrow(lib.crema_solver_net(ptr.value), self._h, "TRAIN")
        self.test_nets = [Net._borrow(lib.crema_solver_test_net(ptr.value, i), self._h, "TEST")
                          for i in range(lib.crema_solver_num_test_nets(ptr.value))]

    @contextlib.contextmanager
    def _hold(self):
        """The live solver's pointer, its lock held."""
        h = self._h
        if h is None:
            raise CremaError(3, "the solver is closed", "INVALID")
        with h.lock:
            if self._h is not h:
                raise CremaError(3, "the solver is closed", "INVALID")
            yield h.ptr

    @property
    def iter(self):
        with self._hold() as p:
            return lib.crema_solver_iter(p)

    def step(self, iters=1):
        """Runs iters iterations (with the tests and snapshots the prototxt asks for)."""
        with self._hold() as p:
            check(lib.crema_solver_step(p, int(iters)))

    def solve(self, resume=None):
        """Trains to max_iter (after restoring `resume`, a .solverstate) and snapshots."""
        r = None if resume is None else encode_path(resume)
        with self._hold() as p:
            check(lib.crema_solver_solve(p, r))

    def snapshot(self):
        """Writes <snapshot_prefix>_iter_N.caffemodel and .solverstate (or the .h5 pair)."""
        with self._hold() as p:
            check(lib.crema_solver_snapshot(p))

    def restore(self, state_file):
        """Restores iteration, learning-rate step, history and the weights a .solverstate names."""
        f = encode_path(state_file)
        with self._hold() as p:
            check(lib.crema_solver_restore(p, f))

    def snapshot_to(self, prefix):
        """snapshot(), the files named <prefix>_iter_N.* instead of the prototxt's snapshot_prefix."""
        f = encode_path(prefix)
        with self._hold() as p:
            check(lib.crema_solver_snapshot_to(p, f))

    def restore_weights(self, state_file, weights):
        """restore(), with the weights read from `weights` instead of the file the state names."""
        f, w = encode_path(state_file), encode_path(weights)
        with self._hold() as p:
            check(lib.crema_solver_restore_weights(p, f, w))

    def set_dist(self, dist):
        """Makes this solver one rank of `dist` (a crema.Dist, which must
        stay open while the solver lives): every rank checks it has the same
        solver and nets, takes rank 0's weights, history and iteration; each
        step then averages the gradients over the ranks, and only rank 0
        writes snapshots."""
        with self._hold() as p:
            with dist._hold() as d:
                check(lib.crema_solver_set_dist(p, d))
        self._dist = dist

    def test_all(self):
        with self._hold() as p:
            check(lib.crema_solver_test_all(p))

    def close(self):
        """Frees the solver and its nets now, unless views of their blobs are
        still alive (then when the last goes). The nets are closed too."""
        for n in [self.__dict__.get("net")] + list(self.__dict__.get("test_nets", [])):
            if n is not None:
                n.close()
        self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
