"""pycaffe's Python half of Net, added to the Net class of _caffe (as
pycaffe does), so that nets made by solvers have it too: blobs, params,
layer_dict, inputs and outputs by name, forward and backward with inputs,
start and end, forward_all in batches, set_input_arrays."""
from collections import OrderedDict
from itertools import zip_longest

import numpy as np

from ._caffe import (AdaDeltaSolver, AdaGradSolver, AdamSolver, Net, NesterovSolver,  # noqa: F401
                     RMSPropSolver, SGDSolver, Timer)
from . import io  # noqa: F401


def _cached(net, attr, make):
    value = net.__dict__.get(attr)
    if value is None:
        value = make()
        net.__dict__[attr] = value
    return value


@property
def _Net_blobs(self):
    """Every blob by name, input to output (an OrderedDict of Blobs)."""
    return _cached(self, "_blobs_dict", lambda: OrderedDict(zip(self._blob_names, self._blobs)))


@property
def _Net_blob_loss_weights(self):
    return _cached(self, "_blob_loss_weights_dict",
                   lambda: OrderedDict(zip(self._blob_names, self._blob_loss_weights)))


@property
def _Net_layer_dict(self):
    return _cached(self, "_layer_dict", lambda: OrderedDict(zip(self._layer_names, self.layers)))


@property
def _Net_params(self):
    """Layers with parameter blobs, input to output: name -> blobs."""
    return _cached(self, "_params_dict",
                   lambda: OrderedDict((name, lr.blobs) for name, lr in zip(self._layer_names, self.layers)
                                       if len(lr.blobs) > 0))


@property
def _Net_inputs(self):
    return _cached(self, "_input_list", lambda: [self._blob_names[i] for i in self._inputs])


@property
def _Net_outputs(self):
    return _cached(self, "_output_list", lambda: [self._blob_names[i] for i in self._outputs])


def _id_names(ids_of, attr):
    @property
    def names(self):
        return _cached(self, attr, lambda: OrderedDict(
            (self._layer_names[i], [self._blob_names[j] for j in ids_of(self, i)])
            for i in range(len(self.layers))))
    return names


def _layer_index(net, name, what):
    try:
        return list(net._layer_names).index(name)
    except ValueError:
        raise ValueError("%s: the net has no layer %r" % (what, name)) from None


def _Net_forward(self, blobs=None, start=None, end=None, **kwargs):
    """Sets the inputs given (name=array, the batch size the net's), runs
    layers start..end (names; default all) and returns {blob: data} for
    the outputs (the tops of `end` when given) and `blobs`: views of the
    net's memory, as pycaffe's."""
    if blobs is None:
        blobs = []
    start_ind = 0 if start is None else _layer_index(self, start, "forward start")
    if end is not None:
        end_ind = _layer_index(self, end, "forward end")
        outputs = set(self.top_names[end] + list(blobs))
    else:
        end_ind = len(self.layers) - 1
        outputs = set(self.outputs + list(blobs))
    if kwargs:
        if set(kwargs.keys()) != set(self.inputs):
            raise Exception('Input blob arguments do not match net inputs.')
        for in_, blob in kwargs.items():
            if blob.shape[0] != self.blobs[in_].shape[0]:
                raise Exception('Input is not batch sized')
            self.blobs[in_].data[...] = blob
    self._forward(start_ind, end_ind)
    return {out: self.blobs[out].data for out in outputs}


def _Net_backward(self, diffs=None, start=None, end=None, **kwargs):
    """Sets the diffs of the outputs given (name=array), runs backward from
    layer start down to end (names; default all) and returns {blob: diff}
    for the inputs (the bottoms of `end` when given) and `diffs`."""
    if diffs is None:
        diffs = []
    start_ind = len(self.layers) - 1 if start is None else _layer_index(self, start, "backward start")
    if end is not None:
        end_ind = _layer_index(self, end, "backward end")
        outputs = set(self.bottom_names[end] + list(diffs))
    else:
        end_ind = 0
        outputs = set(self.inputs + list(diffs))
    if kwargs:
        if set(kwargs.keys()) != set(self.outputs):
            raise Exception('Top diff arguments do not match net outputs.')
        for top, diff in kwargs.items():
            if diff.shape[0] != self.blobs[top].shape[0]:
                raise Exception('Diff is not batch sized')
            self.blobs[top].diff[...] = diff
    self._backward(start_ind, end_ind)
    return {out: self.blobs[out].diff for out in outputs}


def _Net_forward_all(self, blobs=None, **kwargs):
    """forward() over inputs of any number of items, a batch at a time
    (the last one padded with zeros); returns {blob: array of all items}."""
    all_outs = {out: [] for out in set(self.outputs + (blobs or []))}
    for batch in self._batch(kwargs):
        outs = self.forward(blobs=blobs, **batch)
        for out, out_blob in outs.items():
            all_outs[out].extend(out_blob.copy())
    for out in all_outs:
        all_outs[out] = np.asarray(all_outs[out])
    pad = len(next(iter(all_outs.values()))) - len(next(iter(kwargs.values())))
    if pad:
        for out in all_outs:
            all_outs[out] = all_outs[out][:-pad]
    return all_outs


def _Net_forward_backward_all(self, blobs=None, diffs=None, **kwargs):
    """forward() then backward() a batch at a time over inputs (for
    forward) and output diffs (for backward) given by name; returns the
    data of the outputs and `blobs`, and the diffs of the inputs and
    `diffs`."""
    all_outs = {out: [] for out in set(self.outputs + (blobs or []))}
    all_diffs = {diff: [] for diff in set(self.inputs + (diffs or []))}
    forward_batches = self._batch({in_: kwargs[in_] for in_ in self.inputs if in_ in kwargs})
    backward_batches = self._batch({out: kwargs[out] for out in self.outputs if out in kwargs})
    for fb, bb in zip_longest(forward_batches, backward_batches, fillvalue={}):
        batch_blobs = self.forward(blobs=blobs, **fb)
        batch_diffs = self.backward(diffs=diffs, **bb)
        for out, out_blobs in batch_blobs.items():
            all_outs[out].extend(out_blobs.copy())
        for diff, out_diffs in batch_diffs.items():
            all_diffs[diff].extend(out_diffs.copy())
    for out, diff in zip(all_outs, all_diffs):
        all_outs[out] = np.asarray(all_outs[out])
        all_diffs[diff] = np.asarray(all_diffs[diff])
    pad = len(next(iter(all_outs.values()))) - len(next(iter(kwargs.values())))
    if pad:
        for out, diff in zip(all_outs, all_diffs):
            all_outs[out] = all_outs[out][:-pad]
            all_diffs[diff] = all_diffs[diff][:-pad]
    return all_outs, all_diffs


def _Net_set_input_arrays(self, data, labels):
    """Feeds the net's MemoryData layer (its first): data N x C x H x W,
    labels N values; float32 and C-contiguous."""
    if labels.ndim == 1:
        labels = np.ascontiguousarray(labels[:, np.newaxis, np.newaxis, np.newaxis])
    return self._set_input_arrays(data, labels)


def _Net_batch(self, blobs):
    """Yields {name: one batch of blobs[name]}, the last batch padded with
    zeros to the net's batch size (that of its first blob)."""
    num = len(next(iter(blobs.values())))
    batch_size = next(iter(self.blobs.values())).shape[0]
    remainder = num % batch_size
    num_batches = num // batch_size
    for b in range(num_batches):
        i = b * batch_size
        yield {name: blobs[name][i:i + batch_size] for name in blobs}
    if remainder > 0:
        padded_batch = {}
        for name in blobs:
            padding = np.zeros((batch_size - remainder,) + blobs[name].shape[1:])
            padded_batch[name] = np.concatenate([blobs[name][-remainder:], padding])
        yield padded_batch


Net.blobs = _Net_blobs
Net.blob_loss_weights = _Net_blob_loss_weights
Net.layer_dict = _Net_layer_dict
Net.params = _Net_params
Net.forward = _Net_forward
Net.backward = _Net_backward
Net.forward_all = _Net_forward_all
Net.forward_backward_all = _Net_forward_backward_all
Net.set_input_arrays = _Net_set_input_arrays
Net._batch = _Net_batch
Net.inputs = _Net_inputs
Net.outputs = _Net_outputs
Net.top_names = _id_names(Net._top_ids, "_top_names")
Net.bottom_names = _id_names(Net._bottom_ids, "_bottom_names")
