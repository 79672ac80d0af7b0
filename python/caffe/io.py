"""pycaffe's caffe.io: arrays to and from Caffe's messages (BlobProto,
Datum), the Transformer that prepares images for a net's input, and image
loading, resizing and oversampling.

load_image and resize_image use scikit-image (and scipy for images of
other than 1 or 3 channels), as pycaffe does; they are imported when first
needed, so `import caffe` does not need them."""
import numpy as np

from .proto import caffe_pb2


# ---- messages and arrays ----

def blobproto_to_array(blob, return_diff=False):
    """A BlobProto's data (or diff) as an array of its shape: the legacy
    num/channels/height/width when any is set, else shape.dim."""
    data = np.array(blob.diff if return_diff else blob.data)
    if blob.HasField('num') or blob.HasField('channels') or blob.HasField('height') or blob.HasField('width'):
        return data.reshape(blob.num, blob.channels, blob.height, blob.width)
    return data.reshape(blob.shape.dim)


def array_to_blobproto(arr, diff=None):
    """An N-dimensional array (and diff, of the same shape) as a BlobProto."""
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(diff.astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    """Arrays as a serialized BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(arr) for arr in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(str):
    """A serialized BlobProtoVector as a list of arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(str)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A C x H x W array as a Datum: uint8 arrays as bytes in `data`, others
    as float_data; the label only when given."""
    if arr.ndim != 3:
        raise ValueError('Incorrect array shape.')
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    """A Datum's values as a C x H x W array (uint8 from `data`, else
    float); the label is datum.label."""
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(datum.channels, datum.height, datum.width)
    return np.array(datum.float_data).astype(float).reshape(datum.channels, datum.height, datum.width)


# ---- preparing inputs ----

class Transformer:
    """Turns H x W x K images (as load_image gives them) into a net's
    input, per input blob: resize to the input's size, transpose (to K x H x
    W), swap channels (RGB to BGR), scale raw values, subtract the mean,
    scale. `inputs` is {name: shape} (e.g. {'data': net.blobs['data'].data.shape})."""

    def __init__(self, inputs):
        self.inputs = inputs
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def __check_input(self, in_):
        if in_ not in self.inputs:
            raise Exception('{} is not one of the net inputs: {}'.format(in_, self.inputs))

    def preprocess(self, in_, data):
        """data (H' x W' x K) as input `in_` takes it (K x H x W, float32)."""
        self.__check_input(in_)
        caffe_in = data.astype(np.float32, copy=False)
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        if channel_swap is not None:
            caffe_in = caffe_in[channel_swap, :, :]
        if raw_scale is not None:
            caffe_in *= raw_scale
        if mean is not None:
            caffe_in -= mean
        if input_scale is not None:
            caffe_in *= input_scale
        return caffe_in

    def deprocess(self, in_, data):
        """preprocess undone (but for the resize)."""
        self.__check_input(in_)
        decaf_in = data.copy().squeeze()
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            decaf_in /= input_scale
        if mean is not None:
            decaf_in += mean
        if raw_scale is not None:
            decaf_in /= raw_scale
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_, order):
        """The order of the axes, e.g. (2, 0, 1) for H x W x K to K x H x W."""
        self.__check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise Exception('Transpose order needs to have the same number of dimensions as the input.')
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        """The order to take the channels in, after the transpose: (2, 1, 0)
        makes RGB BGR."""
        self.__check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise Exception('Channel swap needs to have the same number of dimensions as the input channels.')
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        """The factor raw values are scaled by before the mean is taken
        off: 255 for models trained on [0, 255] from load_image's [0, 1]."""
        self.__check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """The mean to subtract: per channel (K values) or per element
        (K x H x W, or H x W)."""
        self.__check_input(in_)
        ms = mean.shape
        if mean.ndim == 1:
            if ms[0] != self.inputs[in_][1]:
                raise ValueError('Mean channels incompatible with input.')
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(ms) == 2:
                ms = (1,) + ms
            if len(ms) != 3:
                raise ValueError('Mean shape invalid')
            if ms != tuple(self.inputs[in_][1:]):
                raise ValueError('Mean shape incompatible with input shape.')
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """The factor the input is scaled by last, after the mean."""
        self.__check_input(in_)
        self.input_scale[in_] = scale


# ---- images ----

def _input_transformer(net, mean=None, input_scale=None, raw_scale=None, channel_swap=None):
    """The Transformer Classifier and Detector set up for a net's first
    input: H x W x K images in, K x H x W out, with the preprocessing asked
    for (None leaves a step out)."""
    in_ = net.inputs[0]
    t = Transformer({in_: net.blobs[in_].data.shape})
    t.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        t.set_mean(in_, mean)
    if input_scale is not None:
        t.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        t.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        t.set_channel_swap(in_, channel_swap)
    return t


def _skimage():
    try:
        import skimage
        import skimage.io
        import skimage.transform
    except ImportError as e:
        raise ImportError("caffe.io: loading and resizing images needs scikit-image, as pycaffe's does "
                          "(pip install scikit-image): %s" % e) from e
    return skimage


def load_image(filename, color=True):
    """An image file as an H x W x 3 (RGB; color=False: H x W x 1) float32
    array in [0, 1]."""
    skimage = _skimage()
    img = skimage.img_as_float(skimage.io.imread(filename, as_gray=not color)).astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def resize_image(im, new_dims, interp_order=1):
    """im (H x W x K) resized to new_dims (height, width), interpolating to
    interp_order (1: bilinear)."""
    new_dims = tuple(int(d) for d in new_dims)
    if im.shape[-1] == 1 or im.shape[-1] == 3:
        im_min, im_max = im.min(), im.max()
        if im_max > im_min:
            # skimage resizes images of 1 or 3 channels, in [0, 1]
            im_std = (im - im_min) / (im_max - im_min)
            resized_std = _skimage().transform.resize(im_std, new_dims, order=interp_order, mode='constant')
            resized_im = resized_std * (im_max - im_min) + im_min
        else:
            ret = np.empty((new_dims[0], new_dims[1], im.shape[-1]), dtype=np.float32)
            ret.fill(im_min)
            return ret
    else:
        try:
            from scipy.ndimage import zoom
        except ImportError as e:
            raise ImportError("caffe.io.resize_image: images of %d channels need scipy, as pycaffe's do "
                              "(pip install scipy): %s" % (im.shape[-1], e)) from e
        scale = tuple(np.array(new_dims, dtype=float) / np.array(im.shape[:2]))
        resized_im = zoom(im, scale + (1,), order=interp_order)
    return resized_im.astype(np.float32)


def oversample(images, crop_dims):
    """Ten crops of each image (N x H x W x K): the four corners and the
    centre, then the same mirrored; 10 N x crop H x crop W x K."""
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    im_center = im_shape[:2] / 2.0
    h_indices = (0, im_shape[0] - crop_dims[0])
    w_indices = (0, im_shape[1] - crop_dims[1])
    crops_ix = np.empty((5, 4), dtype=int)
    curr = 0
    for i in h_indices:
        for j in w_indices:
            crops_ix[curr] = (i, j, i + crop_dims[0], j + crop_dims[1])
            curr += 1
    crops_ix[4] = np.tile(im_center, (1, 2)) + np.concatenate([-crop_dims / 2.0, crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]), dtype=np.float32)
    ix = 0
    for im in images:
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :]
    return crops
