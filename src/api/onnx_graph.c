/* The ONNX graph builder behind the exporter: every message, string and
 * array it makes is recorded and freed with the builder; weights are
 * referenced, not copied, until the model is packed. */
#include "api/onnx_graph.h"

#include "proto/proto_io.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct og {
    int rc;
    /* every allocation, freed by og_free */
    void **allocs;
    size_t n_allocs, cap_allocs;
    /* claimed value names: open addressing, power-of-two capacity */
    const char **names;
    size_t n_names, cap_names;
    /* the graph's parts */
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    Onnx__ValueInfoProto **inputs, **outputs;
    size_t n_inputs, cap_inputs, n_outputs, cap_outputs;
};

int og_status(const struct og *g)
{
    return g->rc;
}

int og_fail(struct og *g, int status, const char *fmt, ...)
{
    if (g->rc)
        return g->rc;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g->rc = err_set(status, "%s", msg);
    return g->rc;
}

/* Grows the array at *arrp (elements of elem bytes) to hold n + 1. The
 * pointer is read and written with memcpy, so one function serves arrays
 * of every pointer type. */
static bool grow(struct og *g, void *arrp, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return true;
    void *arr;
    memcpy(&arr, arrp, sizeof arr);
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(arr, c * elem);
    if (!p) {
        og_fail(g, CREMA_ERR_NOMEM, "out of memory building the ONNX graph");
        return false;
    }
    memcpy(arrp, &p, sizeof p);
    *cap = c;
    return true;
}
#define GROW(g, arr, n, cap) grow((g), &(arr), (n), &(cap), sizeof *(arr))

static void *og_alloc(struct og *g, size_t size)
{
    if (g->rc || !GROW(g, g->allocs, g->n_allocs, g->cap_allocs))
        return NULL;
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        og_fail(g, CREMA_ERR_NOMEM, "out of memory building the ONNX graph (%zu bytes)", size);
        return NULL;
    }
    g->allocs[g->n_allocs++] = p;
    return p;
}

struct og *og_new(void)
{
    return calloc(1, sizeof(struct og));
}

void og_free(struct og *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_allocs; i++)
        free(g->allocs[i]);
    free(g->allocs);
    free(g->names);
    free(g->nodes);
    free(g->inits);
    free(g->inputs);
    free(g->outputs);
    free(g);
}

static char *vstr(struct og *g, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *s = n < 0 ? NULL : og_alloc(g, (size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *og_str(struct og *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vstr(g, fmt, ap);
    va_end(ap);
    return s;
}

float *og_floats(struct og *g, size_t n)
{
    return og_alloc(g, n * sizeof(float));
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of name, or of the empty slot where it would go. */
static size_t name_slot(const struct og *g, const char *name)
{
    size_t mask = g->cap_names - 1, i = (size_t)hash_str(name) & mask;
    while (g->names[i] && strcmp(g->names[i], name) != 0)
        i = (i + 1) & mask;
    return i;
}

static bool names_grow(struct og *g)
{
    if ((g->n_names + 1) * 2 <= g->cap_names)
        return true;
    size_t old_cap = g->cap_names, cap = old_cap ? old_cap * 2 : 256;
    const char **old = g->names;
    g->names = calloc(cap, sizeof *g->names);
    if (!g->names) {
        g->names = old;
        og_fail(g, CREMA_ERR_NOMEM, "out of memory building the ONNX graph");
        return false;
    }
    g->cap_names = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i])
            g->names[name_slot(g, old[i])] = old[i];
    free(old);
    return true;
}

/* name must live as long as g. */
static bool claim_owned(struct og *g, const char *name)
{
    if (g->rc || !names_grow(g))
        return false;
    size_t i = name_slot(g, name);
    if (g->names[i])
        return false;
    g->names[i] = name;
    g->n_names++;
    return true;
}

bool og_claim(struct og *g, const char *name)
{
    if (g->rc || !names_grow(g))
        return false;
    if (g->names[name_slot(g, name)])
        return false;
    char *copy = og_str(g, "%s", name);
    return copy && claim_owned(g, copy);
}

const char *og_unique(struct og *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *base = vstr(g, fmt, ap);
    va_end(ap);
    if (!base)
        return NULL;
    if (claim_owned(g, base))
        return base;
    for (int k = 2; !g->rc; k++) {
        char *s = og_str(g, "%s_%d", base, k);
        if (s && claim_owned(g, s))
            return s;
    }
    return NULL;
}

static char **str_array(struct og *g, int n, const char *const *v)
{
    char **a = og_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof *a);
    for (int i = 0; a && i < n; i++)
        if (!(a[i] = og_str(g, "%s", v[i] ? v[i] : "")))
            return NULL;
    return a;
}

Onnx__NodeProto *og_node(struct og *g, const char *op, const char *name, int n_in, const char *const *in,
                         int n_out, const char *const *out)
{
    if (g->rc || !GROW(g, g->nodes, g->n_nodes, g->cap_nodes))
        return NULL;
    Onnx__NodeProto *n = og_alloc(g, sizeof *n);
    if (!n)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = og_str(g, "%s", op);
    n->name = og_str(g, "%s", name ? name : "");
    n->input = str_array(g, n_in, in);
    n->output = str_array(g, n_out, out);
    if (g->rc)
        return NULL;
    n->n_input = (size_t)n_in;
    n->n_output = (size_t)n_out;
    g->nodes[g->n_nodes++] = n;
    return n;
}

static Onnx__AttributeProto *new_attr(struct og *g, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    if (g->rc || !n)
        return NULL;
    Onnx__AttributeProto **arr = og_alloc(g, (n->n_attribute + 1) * sizeof *arr);
    Onnx__AttributeProto *a = og_alloc(g, sizeof *a);
    if (!arr || !a)
        return NULL;
    if (n->n_attribute)
        memcpy(arr, n->attribute, n->n_attribute * sizeof *arr);
    onnx__attribute_proto__init(a);
    a->name = og_str(g, "%s", name);
    a->has_type = 1;
    a->type = type;
    arr[n->n_attribute] = a;
    n->attribute = arr;
    n->n_attribute++;
    return a;
}

void og_attr_int(struct og *g, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = new_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

void og_attr_float(struct og *g, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = new_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

void og_attr_ints(struct og *g, Onnx__NodeProto *n, const char *name, int count, const int64_t *v)
{
    Onnx__AttributeProto *a = new_attr(g, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *c = a ? og_alloc(g, (size_t)(count > 0 ? count : 1) * sizeof *c) : NULL;
    if (!c)
        return;
    if (count > 0)
        memcpy(c, v, (size_t)count * sizeof *c);
    a->ints = c;
    a->n_ints = (size_t)count;
}

static Onnx__TensorProto *new_init(struct og *g, const char *name, int ndims, const int64_t *dims, int type)
{
    if (g->rc || !GROW(g, g->inits, g->n_inits, g->cap_inits))
        return NULL;
    Onnx__TensorProto *t = og_alloc(g, sizeof *t);
    int64_t *d = og_alloc(g, (size_t)(ndims > 0 ? ndims : 1) * sizeof *d);
    if (!t || !d)
        return NULL;
    onnx__tensor_proto__init(t);
    if (ndims > 0)
        memcpy(d, dims, (size_t)ndims * sizeof *d);
    t->dims = d;
    t->n_dims = (size_t)ndims;
    t->has_data_type = 1;
    t->data_type = type;
    t->name = og_str(g, "%s", name);
    if (g->rc)
        return NULL;
    g->inits[g->n_inits++] = t;
    return t;
}

const char *og_init_float(struct og *g, const char *name, int ndims, const int64_t *dims, const float *data,
                          bool copy)
{
    size_t count = 1;
    for (int i = 0; i < ndims; i++)
        count *= (size_t)dims[i];
    Onnx__TensorProto *t = new_init(g, name, ndims, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    if (!t)
        return NULL;
    float *d = (float *)data;
    if (copy) {
        d = og_alloc(g, count * sizeof *d);
        if (!d)
            return NULL;
        memcpy(d, data, count * sizeof *d);
    }
    /* float_data rather than raw_data: protobuf-c writes it little-endian
     * on any host, as the format requires. */
    t->float_data = d;
    t->n_float_data = count;
    return t->name;
}

const char *og_const_ints(struct og *g, const char *base, int count, const int64_t *v)
{
    const char *name = og_unique(g, "%s", base);
    int64_t dim = count;
    Onnx__TensorProto *t = name ? new_init(g, name, 1, &dim, ONNX__TENSOR_PROTO__DATA_TYPE__INT64) : NULL;
    int64_t *d = t ? og_alloc(g, (size_t)(count > 0 ? count : 1) * sizeof *d) : NULL;
    if (!d)
        return NULL;
    if (count > 0)
        memcpy(d, v, (size_t)count * sizeof *d);
    t->int64_data = d;
    t->n_int64_data = (size_t)count;
    return t->name;
}

const char *og_const_float(struct og *g, const char *base, float v)
{
    const char *name = og_unique(g, "%s", base);
    return name ? og_init_float(g, name, 0, NULL, &v, true) : NULL;
}

static Onnx__ValueInfoProto *value_info(struct og *g, const char *name, int ndims, const int64_t *dims,
                                        const char *const *params)
{
    Onnx__ValueInfoProto *vi = og_alloc(g, sizeof *vi);
    Onnx__TypeProto *tp = og_alloc(g, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = og_alloc(g, sizeof *tt);
    Onnx__TensorShapeProto *sh = og_alloc(g, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = og_alloc(g, (size_t)(ndims > 0 ? ndims : 1) * sizeof *dv);
    if (!vi || !tp || !tt || !sh || !dv)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndims; i++) {
        Onnx__TensorShapeProto__Dimension *d = og_alloc(g, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        } else if (params && params[i]) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = og_str(g, "%s", params[i]);
        }
        dv[i] = d;
    }
    sh->dim = dv;
    sh->n_dim = (size_t)ndims;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = og_str(g, "%s", name);
    vi->type = tp;
    return g->rc ? NULL : vi;
}

void og_input(struct og *g, const char *name, int ndims, const int64_t *dims, const char *const *params)
{
    if (g->rc || !GROW(g, g->inputs, g->n_inputs, g->cap_inputs))
        return;
    Onnx__ValueInfoProto *vi = value_info(g, name, ndims, dims, params);
    if (vi)
        g->inputs[g->n_inputs++] = vi;
}

void og_output(struct og *g, const char *name, int ndims, const int64_t *dims, const char *const *params)
{
    if (g->rc || !GROW(g, g->outputs, g->n_outputs, g->cap_outputs))
        return;
    Onnx__ValueInfoProto *vi = value_info(g, name, ndims, dims, params);
    if (vi)
        g->outputs[g->n_outputs++] = vi;
}

int og_write(struct og *g, const char *path, const char *graph_name, const char *doc, int64_t ir_version,
             int64_t opset)
{
    if (g->rc)
        return g->rc;
    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    graph.name = (char *)graph_name;
    graph.doc_string = (char *)doc;
    graph.node = g->nodes;
    graph.n_node = g->n_nodes;
    graph.initializer = g->inits;
    graph.n_initializer = g->n_inits;
    graph.input = g->inputs;
    graph.n_input = g->n_inputs;
    graph.output = g->outputs;
    graph.n_output = g->n_outputs;

    Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    os.domain = "";
    os.has_version = 1;
    os.version = opset;
    Onnx__OperatorSetIdProto *osp = &os;

    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    model.has_ir_version = 1;
    model.ir_version = ir_version;
    model.opset_import = &osp;
    model.n_opset_import = 1;
    model.producer_name = "crema";
    model.producer_version = (char *)crema_version();
    model.graph = &graph;

    /* Protocol buffers cannot hold a message of 2 GiB or more: readers
     * (ONNX, ONNX Runtime) refuse it. */
    size_t size = protobuf_c_message_get_packed_size(&model.base);
    if (size >= ((size_t)1 << 31))
        return og_fail(g, CREMA_ERR_UNSUPPORTED,
                       "%s: the model is %zu bytes; ONNX files must stay under 2 GiB (crema does not "
                       "write ONNX external data)",
                       path, size);
    int rc = proto_write_binary(path, &model.base);
    if (rc)
        g->rc = rc;
    return rc;
}
