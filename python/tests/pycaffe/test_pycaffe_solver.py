"""The solvers as pycaffe's test_solver.py exercises them (solve, iter,
apply_update, nets outliving the solver, snapshot), every solver class and
get_solver, restore."""
import os
import shutil
import tempfile
import unittest

import numpy as np

import caffe
from pycaffe_testing import simple_net_file


class TestSolver(unittest.TestCase):
    def setUp(self):
        self.num_output = 13
        self.dir = tempfile.mkdtemp()
        self.cwd = os.getcwd()
        os.chdir(self.dir)  # snapshots go to the working directory, as in pycaffe's test
        self.net_f = simple_net_file(self.num_output)
        self.solver_f = os.path.join(self.dir, 'solver.prototxt')
        with open(self.solver_f, 'w') as f:
            f.write("""net: '%s'
            test_iter: 10 test_interval: 10 base_lr: 0.01 momentum: 0.9
            weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 power: 0.75
            display: 100 max_iter: 100 snapshot_after_train: false
            snapshot_prefix: "model" """ % self.net_f)
        self.solver = caffe.SGDSolver(self.solver_f)
        caffe.get_solver(self.solver_f)  # also make sure get_solver runs
        caffe.set_mode_cpu()
        rs = np.random.RandomState(4)
        self.solver.net.blobs['label'].data[...] = rs.randint(self.num_output,
                                                               size=self.solver.net.blobs['label'].data.shape)
        self.solver.test_nets[0].blobs['label'].data[...] = rs.randint(
            self.num_output, size=self.solver.test_nets[0].blobs['label'].data.shape)

    def tearDown(self):
        os.chdir(self.cwd)
        os.remove(self.net_f)
        shutil.rmtree(self.dir)

    def test_solve(self):
        self.assertEqual(self.solver.iter, 0)
        self.solver.solve(None)
        self.assertEqual(self.solver.iter, 100)

    def test_apply_update(self):
        net = self.solver.net
        data = net.layers[1].blobs[0].data[...]
        data[...] = 0
        net.layers[1].blobs[0].diff[...] = 1
        self.solver.apply_update()  # lr 0.01 at iteration 0
        self.assertTrue(np.abs(data - -0.01 * np.ones(data.shape)).max() < 1e-7)
        self.assertEqual(self.solver.iter, 0)

    def test_net_memory(self):
        """Nets survive the solver."""
        nets = [self.solver.net] + list(self.solver.test_nets)
        self.assertEqual(len(nets), 2)
        del self.solver
        total = 0
        for net in nets:
            for ps in net.params.values():
                for p in ps:
                    total += p.data.sum() + p.diff.sum()
            for bl in net.blobs.values():
                total += bl.data.sum() + bl.diff.sum()
        self.assertTrue(np.isfinite(total))

    def test_snapshot(self):
        self.solver.snapshot()
        for fn in ['model_iter_0.caffemodel', 'model_iter_0.solverstate']:
            self.assertTrue(os.path.isfile(fn))
            os.remove(fn)

    def test_step_and_restore(self):
        self.solver.step(3)
        self.assertEqual(self.solver.iter, 3)
        self.solver.snapshot()
        w3 = self.solver.net.params['ip'][0].data.copy()
        self.solver.step(2)
        self.assertEqual(self.solver.iter, 5)
        self.assertFalse(np.array_equal(w3, self.solver.net.params['ip'][0].data))
        self.solver.restore('model_iter_3.solverstate')
        self.assertEqual(self.solver.iter, 3)
        np.testing.assert_array_equal(w3, self.solver.net.params['ip'][0].data)

    def test_param(self):
        p = self.solver.param
        self.assertEqual((p.max_iter, p.display, p.base_lr), (100, 100, np.float32(0.01)))

    def test_test_net_shares_weights(self):
        self.solver.step(1)
        np.testing.assert_array_equal(self.solver.test_nets[0].params['ip'][0].data,
                                      self.solver.net.params['ip'][0].data)

    def test_every_solver(self):
        """Each class runs its own rule, whatever the file's type (SGD):
        first steps from diffs of 1 at lr 0.01, no momentum."""
        plain = os.path.join(self.dir, 'plain.prototxt')
        with open(plain, 'w') as f:
            f.write("net: '%s' base_lr: 0.01 lr_policy: 'fixed' max_iter: 10 snapshot_prefix: 'plain'" % self.net_f)
        expected = {caffe.SGDSolver: -0.01, caffe.NesterovSolver: -0.01, caffe.AdaGradSolver: -0.01,
                    caffe.RMSPropSolver: -0.01 / np.sqrt(0.01),          # rms_decay 0.99
                    caffe.AdaDeltaSolver: -0.01 * np.sqrt(1e-8),         # delta 1e-8, decay 0
                    caffe.AdamSolver: -0.01}
        for cls, want in expected.items():
            s = cls(plain)
            w = s.net.params['ip'][0]
            w.data[...] = 0
            w.diff[...] = 1
            s.apply_update()
            self.assertAlmostEqual(float(w.data.flat[0]) / want, 1.0, places=4, msg=cls.__name__)
        self.assertIsInstance(caffe.get_solver(self.solver_f), caffe.SGDSolver)
        # Caffe refuses momentum for AdaGrad
        with self.assertRaisesRegex(RuntimeError, 'momentum'):
            caffe.AdaGradSolver(self.solver_f)


if __name__ == '__main__':
    unittest.main()
