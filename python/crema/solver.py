"""crema.Solver: Caffe's Solver over libcrema (pycaffe's get_solver)."""
import ctypes

from ._capi import CremaError, check, encode_path, lib
from .net import Net


class _SolverHandle:
    """Owns one crema_solver*; the Nets borrowed from it keep it alive."""

    def __init__(self, ptr):
        self.ptr = ptr

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

    def _live(self):
        if self._h is None:
            raise CremaError(3, "the solver is closed", "INVALID")
        return self._h.ptr

    @property
    def iter(self):
        return lib.crema_solver_iter(self._live())

    def step(self, iters=1):
        """Runs iters iterations (with the tests and snapshots the prototxt asks for)."""
        check(lib.crema_solver_step(self._live(), int(iters)))

    def solve(self, resume=None):
        """Trains to max_iter (after restoring `resume`, a .solverstate) and snapshots."""
        check(lib.crema_solver_solve(self._live(), None if resume is None else encode_path(resume)))

    def snapshot(self):
        """Writes <snapshot_prefix>_iter_N.caffemodel and .solverstate (or the .h5 pair)."""
        check(lib.crema_solver_snapshot(self._live()))

    def restore(self, state_file):
        """Restores iteration, learning-rate step, history and the weights a .solverstate names."""
        check(lib.crema_solver_restore(self._live(), encode_path(state_file)))

    def snapshot_to(self, prefix):
        """snapshot(), the files named <prefix>_iter_N.* instead of the prototxt's snapshot_prefix."""
        check(lib.crema_solver_snapshot_to(self._live(), encode_path(prefix)))

    def restore_weights(self, state_file, weights):
        """restore(), with the weights read from `weights` instead of the file the state names."""
        check(lib.crema_solver_restore_weights(self._live(), encode_path(state_file), encode_path(weights)))

    def set_dist(self, dist):
        """Makes this solver one rank of `dist` (a crema.Dist, which must
        stay open while the solver lives): every rank checks it has the same
        solver and nets, takes rank 0's weights, history and iteration; each
        step then averages the gradients over the ranks, and only rank 0
        writes snapshots."""
        check(lib.crema_solver_set_dist(self._live(), dist._live()))
        self._dist = dist

    def test_all(self):
        check(lib.crema_solver_test_all(self._live()))

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
