"""pycaffe's caffe.draw: a NetParameter (caffe_pb2) as a graph of layers
and blobs, through pydot (pip install pydot; rendering to an image also
needs Graphviz's `dot` program)."""
import pydot

from .proto import caffe_pb2

LAYER_STYLE_DEFAULT = {'shape': 'record', 'fillcolor': '#6495ED', 'style': 'filled'}
NEURON_LAYER_STYLE = {'shape': 'record', 'fillcolor': '#90EE90', 'style': 'filled'}
BLOB_STYLE = {'shape': 'octagon', 'fillcolor': '#E0E0E0', 'style': 'filled'}


def get_pooling_types_dict():
    """Pooling method number -> name."""
    desc = caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR
    return {v.number: k for k, v in desc.values_by_name.items()}


def get_edge_label(layer):
    """The label of a layer's output edges: batch size, or outputs."""
    if layer.type == 'Data':
        return 'Batch ' + str(layer.data_param.batch_size)
    if layer.type in ('Convolution', 'Deconvolution'):
        return str(layer.convolution_param.num_output)
    if layer.type == 'InnerProduct':
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weights, biases) learning-rate multipliers of a Convolution,
    Deconvolution or InnerProduct layer."""
    if layer.type not in ('Convolution', 'Deconvolution', 'InnerProduct'):
        raise ValueError("%s layers do not have a learning rate multiplier" % layer.type)
    params = layer.param
    if len(params) == 0:
        return (1.0, 1.0)
    if len(params) == 1:
        return (params[0].lr_mult, 1.0)
    if len(params) == 2:
        return (params[0].lr_mult, params[1].lr_mult)
    raise ValueError("Could not parse the learning rate multiplier")


def get_layer_label(layer, rankdir, display_lrm=False):
    """A layer's node label: name, (type), kernel/stride/pad for spatial
    layers, lr mults when asked; words apart by spaces (rankdir TB, BT) or
    line breaks."""
    separator = ' ' if rankdir in ('TB', 'BT') else r'\n'
    parts = [layer.name]
    if layer.type == 'Pooling':
        parts.append('(%s %s)' % (layer.type, get_pooling_types_dict()[layer.pooling_param.pool]))
    else:
        parts.append('(%s)' % layer.type)
    if layer.type in ('Convolution', 'Deconvolution', 'Pooling'):
        if layer.type == 'Pooling':
            p = layer.pooling_param
            kernel_size, stride, padding = p.kernel_size, p.stride, p.pad
        else:
            p = layer.convolution_param
            kernel_size = p.kernel_size[0] if len(p.kernel_size) else 1
            stride = p.stride[0] if len(p.stride) else 1
            padding = p.pad[0] if len(p.pad) else 0
        parts.append(separator.join(["kernel size: %d" % kernel_size, "stride: %d" % stride,
                                     "pad: %d" % padding]))
    if display_lrm and layer.type in ('Convolution', 'Deconvolution', 'InnerProduct'):
        lrm0, lrm1 = get_layer_lr_mult(layer)
        if any([lrm0, lrm1]):
            parts.append("lr mult: %.1f, %.1f" % (lrm0, lrm1))
    # quoted, or a colon would not parse
    return '"%s"' % separator.join(parts)


def choose_color_by_layertype(layertype):
    if layertype in ('Convolution', 'Deconvolution'):
        return '#FF5050'
    if layertype == 'Pooling':
        return '#FF9900'
    if layertype == 'InnerProduct':
        return '#CC33FF'
    return '#6495ED'


def _included(layer, phase):
    if len(layer.include) > 0 and len(layer.exclude) > 0:
        raise ValueError('layer ' + layer.name + ' has both include and exclude specified.')
    included = len(layer.include) == 0
    for rule in layer.include:
        included = included or rule.phase == phase
    for rule in layer.exclude:
        included = included and not rule.phase == phase
    return included


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """A pydot graph of the net: a node per layer and per blob, edges from
    bottoms to layers to tops (phase: only that phase's layers)."""
    graph = pydot.Dot(caffe_net.name if caffe_net.name else 'Net', graph_type='digraph', rankdir=rankdir)
    nodes = {}
    edges = []
    for layer in caffe_net.layer:
        if phase is not None and not _included(layer, phase):
            continue
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        node_name = "%s_%s" % (layer.name, layer.type)
        if len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]:
            nodes[node_name] = pydot.Node(label, **NEURON_LAYER_STYLE)
        else:
            style = dict(LAYER_STYLE_DEFAULT, fillcolor=choose_color_by_layertype(layer.type))
            nodes[node_name] = pydot.Node(label, **style)
        for bottom in layer.bottom:
            nodes[bottom + '_blob'] = pydot.Node('%s' % bottom, **BLOB_STYLE)
            edges.append((bottom + '_blob', node_name, '""'))
        for top in layer.top:
            nodes[top + '_blob'] = pydot.Node('%s' % top)
            edges.append((node_name, top + '_blob', get_edge_label(layer) if label_edges else '""'))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(nodes[src], nodes[dst], label=label))
    return graph


def draw_net(caffe_net, rankdir, ext='png', phase=None, display_lrm=False):
    """The net drawn by Graphviz in format `ext` (bytes)."""
    return get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm).create(format=ext)


def draw_net_to_file(caffe_net, filename, rankdir='LR', phase=None, display_lrm=False):
    """The net drawn into filename, in the format its extension names."""
    ext = filename[filename.rfind('.') + 1:]
    with open(filename, 'wb') as fid:
        fid.write(draw_net(caffe_net, rankdir, ext, phase, display_lrm))
