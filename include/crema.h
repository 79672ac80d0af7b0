/* crema: Caffe-compatible deep learning in C. The one public header.
 * Every call that can fail returns a crema_status; crema_errmsg() says why. */
#ifndef CREMA_H
#define CREMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum crema_status {
    CREMA_OK = 0,
    CREMA_ERR_IO = 1,          /* a file could not be opened, read or written */
    CREMA_ERR_PARSE = 2,       /* text or binary input is malformed */
    CREMA_ERR_INVALID = 3,     /* input is well-formed but its values are wrong */
    CREMA_ERR_SHAPE = 4,       /* shapes do not agree */
    CREMA_ERR_UNSUPPORTED = 5, /* valid Caffe, but crema cannot do it here */
    CREMA_ERR_NOMEM = 6,       /* out of memory, or a size too large to allocate */
    CREMA_ERR_NOTFOUND = 7,    /* a named blob, layer or key does not exist */
    CREMA_ERR_DIST = 8,        /* a peer or the rendezvous failed */
    CREMA_ERR_INTERRUPTED = 9, /* stopped by a signal */
    CREMA_ERR_DEVICE = 10      /* the GPU (or its driver or libraries) reported an error */
} crema_status;

/* The message of the last failure on this thread ("" if none). */
const char *crema_errmsg(void);

/* A short name for a status code. */
const char *crema_status_name(crema_status s);

const char *crema_version(void);

/* ---- Nets ------------------------------------------------------------ */

typedef struct crema_net crema_net;

typedef enum crema_phase { CREMA_TRAIN = 0, CREMA_TEST = 1 } crema_phase;

#define CREMA_MAX_AXES 32

/* A view of a tensor inside a net: its shape and its float buffers. The
 * pointers stay valid until the net is reshaped, run forward (layers may
 * reshape their tops) or freed. */
typedef struct crema_blob {
    int num_axes;
    int shape[CREMA_MAX_AXES];
    size_t count;
    float *data;
    float *diff;
} crema_blob;

/* Builds the net of a prototxt (text NetParameter) in the given phase and,
 * when weights is not NULL, loads them by layer name: a binary .caffemodel
 * or an HDF5 .caffemodel.h5 (as crema_net_load_weights). Nets and weights
 * in Caffe's V0/V1 formats are upgraded as Caffe does on load, with one
 * notice on stderr per file. */
crema_status crema_net_open(const char *prototxt, const char *weights, crema_phase phase, crema_net **out);
void crema_net_free(crema_net *net);

/* Loads more weights into an open net (Caffe's CopyTrainedLayersFrom).
 * Layers with weights that the file does not name keep their values and are
 * named in a notice on stderr; a file that gives no layer any weights (an
 * empty or unrelated one) is an error, unless flags has
 * CREMA_WEIGHTS_ALLOW_UNMATCHED. V0/V1 files are upgraded on load. */
crema_status crema_net_load_weights(crema_net *net, const char *weights);
#define CREMA_WEIGHTS_ALLOW_UNMATCHED 1u
crema_status crema_net_load_weights_flags(crema_net *net, const char *weights, unsigned flags);
/* Writes the net's weights as a binary .caffemodel (atomically). */
crema_status crema_net_save_weights(crema_net *net, const char *path);

/* Any blob by name (inputs, outputs, intermediate): shape and buffers. */
crema_status crema_net_blob(crema_net *net, const char *name, crema_blob *out);
/* Parameter blob `index` of layer `layer`. */
crema_status crema_net_param(crema_net *net, const char *layer, int index, crema_blob *out);
/* Sets a blob (normally an input) to shape and copies count values in; a
 * new shape is propagated through the net (every layer is reshaped). */
crema_status crema_net_set_input(crema_net *net, const char *name, int num_axes, const int *shape,
                                 const float *data);
/* Copies a blob's data (or diff) out; count must equal the blob's count. */
crema_status crema_net_get_blob(crema_net *net, const char *name, int diff, float *dst, size_t count);

/* Feeds a MemoryData layer n items (n * channels*height*width floats) and n
 * labels; each forward takes batch_size of them, wrapping around. */
crema_status crema_net_set_memory_data(crema_net *net, const char *layer, const float *data, const float *labels,
                                       int n);

/* Forward through every layer (or layers start..end, inclusive); *loss may be
 * NULL. Backward computes every gradient the net needs (or layers start down
 * to end). Parameter gradients accumulate until the caller clears them. */
crema_status crema_net_forward(crema_net *net, float *loss);
crema_status crema_net_forward_from_to(crema_net *net, int start, int end, float *loss);
crema_status crema_net_backward(crema_net *net);
crema_status crema_net_backward_from_to(crema_net *net, int start, int end);
crema_status crema_net_clear_param_diffs(crema_net *net);

/* The net's layers, inputs and outputs. */
int crema_net_num_layers(const crema_net *net);
const char *crema_net_layer_name(const crema_net *net, int i);
const char *crema_net_layer_type(const crema_net *net, int i);
int crema_net_num_inputs(const crema_net *net);
const char *crema_net_input_name(const crema_net *net, int i);
int crema_net_num_outputs(const crema_net *net);
const char *crema_net_output_name(const crema_net *net, int i);

/* The wiring of layer i: how many parameter blobs, bottoms and tops it has,
 * and their names (NULL when an index is out of range). */
int crema_net_layer_num_params(const crema_net *net, int i);
int crema_net_layer_num_bottoms(const crema_net *net, int i);
const char *crema_net_layer_bottom_name(const crema_net *net, int i, int j);
int crema_net_layer_num_tops(const crema_net *net, int i);
const char *crema_net_layer_top_name(const crema_net *net, int i, int j);
/* Every blob of the net in Caffe's order (inserted split blobs included). */
int crema_net_num_blobs(const crema_net *net);
const char *crema_net_blob_name(const crema_net *net, int i);

/* ---- Weights files --------------------------------------------------- */

/* A weights file read into memory without a net: a binary .caffemodel (any
 * NetParameter, V1 `layers` included) or an HDF5 .caffemodel.h5, as its
 * layers' names and blobs, in file order. */
typedef struct crema_weights crema_weights;

crema_status crema_weights_open(const char *path, crema_weights **out);
void crema_weights_free(crema_weights *w);
int crema_weights_num_layers(const crema_weights *w);
const char *crema_weights_layer_name(const crema_weights *w, int i);
int crema_weights_num_blobs(const crema_weights *w, int i);
/* Blob j of layer i; out->diff is NULL when the file holds no diff for it.
 * The buffers live until crema_weights_free. */
crema_status crema_weights_blob(crema_weights *w, int i, int j, crema_blob *out);

/* ---- Prototxt documents ----------------------------------------------- */

/* A Caffe message (a net, a solver, ...) read from the text format by the
 * engine's own reader, to inspect and rewrite before printing it back:
 * what front ends (crema.spark, the JVM classes) use instead of a reader
 * of their own, so that the rules are the engine's. Fields are named by
 * paths: "layer[2].memory_data_param.source" (an index after a repeated
 * field). Values go in and out as the text format writes them. */
typedef struct crema_proto crema_proto;

/* type: a message of caffe.proto by name: "NetParameter", "SolverParameter",
 * "LayerParameter", "NetState", "TransformationParameter", "SolverState".
 * filename (may be NULL) names the text in messages ("FILE:LINE:COL: ..."). */
crema_status crema_proto_parse(const char *type, const char *text, size_t len, const char *filename,
                               crema_proto **out);
/* The same from a file (a "file:" URI or a path). */
crema_status crema_proto_read(const char *type, const char *path, crema_proto **out);
void crema_proto_free(crema_proto *p);
/* The message's type name, as crema_proto_parse takes it. */
const char *crema_proto_type(const crema_proto *p);
/* The message in the text format; *text is freed with crema_free. len may
 * be NULL. */
crema_status crema_proto_print(const crema_proto *p, char **text, size_t *len);
/* Frees what the crema_proto_* calls return. */
void crema_free(void *ptr);
/* Reads more text into the message, as protobuf's TextFormat::Merge (and
 * MergeFrom): scalars replaced, repeated fields appended to. On a parse
 * error the message keeps what was read before it. */
crema_status crema_proto_merge(crema_proto *p, const char *text, size_t len);

/* The value at path (freed with crema_free; len, which may be NULL, gets
 * its length: bytes fields may hold NULs): numbers, true/false and enum
 * names as the text format writes them, strings raw (not quoted), a message
 * as its fields in the text format. An unset scalar reads as its declared
 * default. CREMA_ERR_NOTFOUND: a message on the path is not set or an
 * index is past the end. */
crema_status crema_proto_get(const crema_proto *p, const char *path, char **value, size_t *len);
/* The number of values at path: a repeated field's count, 1 or 0 for a
 * singular field set or not; 0 when a message on the path is not set. */
crema_status crema_proto_count(const crema_proto *p, const char *path, size_t *n);
/* Replaces the field at path (every value of a repeated one) with value in
 * the text format: 64, 0.01, true, TEST, "quoted \"string\"", { ... } for a
 * message. Messages on the path that are not set are created. */
crema_status crema_proto_set(crema_proto *p, const char *path, const char *value);
/* Appends value to the repeated field at path. */
crema_status crema_proto_add(crema_proto *p, const char *path, const char *value);
/* Unsets the field at path (with an index, removes that value only). */
crema_status crema_proto_clear(crema_proto *p, const char *path);

/* What the field at path holds, by the schema alone: *type is "int32",
 * "uint32", "int64", "float", "double", "bool", "enum", "string", "bytes",
 * or a message field's type ("caffe.LayerParameter"); *repeated is 1 for a
 * repeated field. Either output may be NULL. */
crema_status crema_proto_field(const crema_proto *p, const char *path, const char **type, int *repeated);

/* Caffe's upgrades on read: a NetParameter's V0/V1 layers, data transform
 * fields, input fields and BatchNorm params; a SolverParameter's
 * solver_type. *changed (may be NULL) says whether anything changed. */
crema_status crema_proto_upgrade(crema_proto *p, int *changed);
/* Caffe's FilterNet on a NetParameter, in place, with the engine's rules:
 * keeps the layers whose include/exclude rules admit the NetState `state`
 * (phase, level, stages). An old-format net is upgraded first. */
crema_status crema_proto_filter_net(crema_proto *net, const crema_proto *state);

/* ---- Solvers ---------------------------------------------------------- */

/* Caffe's Solver: the train and test nets of a solver prototxt, trained by
 * its `type` and learning-rate policy. Relative paths in the prototxt (net,
 * snapshot_prefix, data sources) are relative to the working directory, as
 * in Caffe. */
typedef struct crema_solver crema_solver;

/* Reads the solver prototxt, builds its nets and loads its `weights`; with
 * log_to_stderr, Caffe's INFO lines (loss, lr, tests) go to stderr. */
crema_status crema_solver_open(const char *solver_prototxt, int log_to_stderr, crema_solver **out);
void crema_solver_free(crema_solver *s);
/* iters iterations of Caffe's Step (tests, updates, snapshots as the
 * prototxt says). */
crema_status crema_solver_step(crema_solver *s, int iters);
/* Caffe's Solve: restore (resume_file may be NULL), train to max_iter,
 * snapshot at the end. */
crema_status crema_solver_solve(crema_solver *s, const char *resume_file);
/* Writes <snapshot_prefix>_iter_N.caffemodel + .solverstate (or .h5). */
crema_status crema_solver_snapshot(crema_solver *s);
/* Restores a .solverstate (or .solverstate.h5) and the weights it names. */
crema_status crema_solver_restore(crema_solver *s, const char *state_file);
/* Runs every test net over its test_iter batches, logging the outputs. */
crema_status crema_solver_test_all(crema_solver *s);
int crema_solver_iter(const crema_solver *s);
/* The train net and the test nets: owned by the solver (never pass them to
 * crema_net_free), valid until crema_solver_free. */
crema_net *crema_solver_net(crema_solver *s);
int crema_solver_num_test_nets(const crema_solver *s);
crema_net *crema_solver_test_net(crema_solver *s, int i);


/* ---- CaffeOnSpark feeding -------------------------------------------- */

/* Feeds top `top` of a CoSData layer n samples (a positive multiple of its
 * batch_size; forwards take batch_size at a time, wrapping around).
 * Numeric tops (STRING, INT, FLOAT, INT_ARRAY, FLOAT_ARRAY: the caller
 * converts the column) take n x sample-size floats and lengths NULL;
 * RAW_IMAGE takes n planar channels x height x width uint8 images and
 * lengths NULL; ENCODED_IMAGE(_WITH_DIM) takes the n JPEG/PNG files back to
 * back with lengths[i] bytes each. Images are decoded, resized to the top's
 * height x width when given, and transformed by its transform_param. */
crema_status crema_net_set_cos_data(crema_net *net, const char *layer, int top, const void *data,
                                    const size_t *lengths, int n);
/* The cos_data_param DataType of a CoSData layer's top (STRING 0 ..
 * ENCODED_IMAGE_WITH_DIM 7), and its sample size in floats; -1 when the
 * layer is not CoSData or has no such top. */
int crema_net_cos_top_type(crema_net *net, const char *layer, int top);
long crema_net_cos_top_size(crema_net *net, const char *layer, int top);

/* Feeds a MemoryData layer n images and n labels as CaffeOnSpark's image
 * sources do: raw planar channels x height x width uint8 (lengths NULL), or
 * encoded files back to back (lengths given; channels 1 decodes gray, 3
 * colour, 0 as stored; height, width > 0 resize), then the layer's
 * transform_param. n must be a multiple of batch_size. */
crema_status crema_net_set_memory_images(crema_net *net, const char *layer, const uint8_t *data,
                                         const size_t *lengths, int n, int channels, int height, int width,
                                         const float *labels);

/* Makes a Data layer read only records rank, rank + size, ... (its shard);
 * before the layer's first forward. */
crema_status crema_net_set_data_shard(crema_net *net, const char *layer, int rank, int size);
/* The number of records of a database ("lmdb" or "leveldb"). */
crema_status crema_db_count(const char *path, const char *backend, size_t *count);
/* The keys of records rank, rank + size, ... (the shard crema_net_set_data_shard
 * gives a rank), in the database's order: key i is bytes offsets[i] up to
 * offsets[i + 1] of keys. *count keys; free both with crema_free. */
crema_status crema_db_keys(const char *path, const char *backend, int rank, int size, uint8_t **keys,
                           size_t **offsets, size_t *count);

/* ---- Data-parallel ranks ----------------------------------------------- */

/* One rank of a job of `size` ranks meeting at the rendezvous `address`
 * ("tcp://host:port" or "host:port", served by rank 0; or "file:///dir")
 * with a shared secret; a rank or peer that does not answer within
 * timeout_ms (0: 30 s) fails the call, naming it. */
typedef struct crema_dist crema_dist;
crema_status crema_dist_open(int rank, int size, const char *address, const char *secret, int timeout_ms,
                             crema_dist **out);
void crema_dist_free(crema_dist *d);
int crema_dist_rank(const crema_dist *d);
int crema_dist_size(const crema_dist *d);
/* Sums buf over every rank, in place. */
crema_status crema_dist_allreduce(crema_dist *d, float *buf, size_t n);
/* Copies root's bytes to every rank. */
crema_status crema_dist_broadcast(crema_dist *d, void *buf, size_t bytes, int root);
crema_status crema_dist_barrier(crema_dist *d);

/* Makes the solver rank crema_dist_rank(d) of the job (d must outlive it):
 * the same solver and nets on every rank is checked, rank 0's weights,
 * history and iteration go to every rank, each step's gradients are
 * averaged over the ranks, only rank 0 snapshots (see solver_set_dist). */
crema_status crema_solver_set_dist(crema_solver *s, crema_dist *d);

/* ---- Devices ----------------------------------------------------------- */

/* Where nets and solvers opened from now on compute, as pycaffe's
 * caffe.set_mode_cpu()/set_mode_gpu()/set_device(): process-wide, CPU
 * unless set. CREMA_MODE_GPU (with the device set, default 0) fails at once,
 * saying why, where no usable GPU is. */
typedef enum { CREMA_MODE_CPU = 0, CREMA_MODE_GPU = 1 } crema_mode;
crema_status crema_set_mode(crema_mode mode);
crema_mode crema_get_mode(void);
crema_status crema_set_device(int gpu_id);
int crema_get_device(void);
/* GPUs present (0 where there is no GPU, driver or CUDA plugin). */
int crema_gpu_count(void);
/* Moves an open net (a solver: its nets and update) to a device by name:
 * "cpu", "gpu", "gpu:N" (see net/device.h). */
crema_status crema_net_set_device(crema_net *net, const char *device);
crema_status crema_solver_set_device(crema_solver *s, const char *device);

/* ---- What pycaffe's interface needs --------------------------------- */

/* crema_net_open with Caffe's NetState: the phase, a level (the file's
 * state.level is replaced) and n_stages stages (added to the file's
 * state.stage), as pycaffe's Net(file, phase, level=, stages=). */
crema_status crema_net_open_state(const char *prototxt, const char *weights, crema_phase phase, int level,
                                  const char *const *stages, int n_stages, crema_net **out);
/* Gives blob `name` a new shape without reshaping the rest of the net
 * (Caffe's Blob::Reshape); crema_net_reshape (or the next forward, which
 * reshapes each layer before it runs) carries it through. */
crema_status crema_net_reshape_blob(crema_net *net, const char *name, int num_axes, const int *shape);
crema_status crema_net_reshape(crema_net *net);
/* Caffe's ShareTrainedLayersWith: every layer of `net` named as a layer of
 * `other` uses other's parameter data (the counts and shapes must match). */
crema_status crema_net_share_with(crema_net *net, crema_net *other);
/* Caffe's Net::ToHDF5 and CopyTrainedLayersFromHDF5: the weights as an HDF5
 * file (whatever the name ends in); with_diff also writes the diffs. */
crema_status crema_net_save_hdf5(crema_net *net, const char *path, int with_diff);
crema_status crema_net_load_hdf5(crema_net *net, const char *path);
/* The loss weight of blob i of crema_net_blob_name's order (Caffe's
 * blob_loss_weights); 0 when out of range. */
float crema_net_blob_loss_weight(const crema_net *net, int i);
/* Where fillers of nets opened from now on start (pycaffe's
 * caffe.set_random_seed), also for solvers whose random_seed is unset. */
void crema_set_random_seed(uint64_t seed);
/* The layer types nets can be built with, sorted by name as Caffe's
 * LayerTypeList ("Python" only while a provider is registered). */
int crema_layer_type_count(void);
const char *crema_layer_type_name(int i);
/* Caffe's Solver::ApplyUpdate: the update of the current gradients at the
 * current iteration's learning rate (clipping, normalization,
 * regularization, the solver's rule), without advancing the iteration. */
crema_status crema_solver_apply_update(crema_solver *s);
/* crema_solver_open with the solver's `type` replaced ("SGD", "Nesterov",
 * "AdaGrad", "RMSProp", "AdaDelta", "Adam"; NULL keeps the file's), as
 * pycaffe's AdamSolver(file) and friends. */
crema_status crema_solver_open_type(const char *solver_prototxt, const char *type, int log_to_stderr,
                                    crema_solver **out);

/* ---- Layers implemented by callbacks ----------------------------------- */

/* A front end implements layers of type "Python" (python_param { module
 * layer param_str }) by callbacks; a net with such a layer builds only while
 * a provider is registered. The callbacks run on the thread that runs the
 * net, on host float arrays, and return CREMA_OK or a status (with
 * crema_layer_fail for the message). A Python layer on a GPU net computes on
 * the host copies, as the data layers do. */
typedef struct crema_layer crema_layer;

typedef struct crema_layer_callbacks {
    /* A new layer: *state (the provider's) is handed to the others. */
    crema_status (*create)(void *user, crema_layer *layer, void **state);
    crema_status (*setup)(void *state, crema_layer *layer);
    crema_status (*reshape)(void *state, crema_layer *layer);
    crema_status (*forward)(void *state, crema_layer *layer);
    /* propagate_down: one flag per bottom. */
    crema_status (*backward)(void *state, crema_layer *layer, const int *propagate_down);
    /* The layer's net is being freed. May be NULL. */
    void (*destroy)(void *state);
} crema_layer_callbacks;

/* Registers the provider of layers of `type` (only "Python" is built this
 * way); callbacks NULL unregisters it: layers made before then are freed
 * without their destroy callback. */
crema_status crema_register_layer(const char *type, const crema_layer_callbacks *callbacks, void *user);

enum { CREMA_LAYER_BOTTOM = 0, CREMA_LAYER_TOP = 1, CREMA_LAYER_PARAM = 2 };
int crema_layer_count(const crema_layer *layer, int which);
/* Bottom, top or parameter blob i: shape and host buffers. */
crema_status crema_layer_blob(crema_layer *layer, int which, int i, crema_blob *out);
crema_status crema_layer_reshape(crema_layer *layer, int which, int i, int num_axes, const int *shape);
/* Adds a learnable parameter blob (zeros); only in setup. */
crema_status crema_layer_add_param(crema_layer *layer, int num_axes, const int *shape);
/* The layer's LayerParameter in the binary format (its phase set), freed
 * with crema_free. */
crema_status crema_layer_param(const crema_layer *layer, uint8_t **bytes, size_t *len);
/* Sets crema_errmsg() to message and returns status, for a failing callback. */
crema_status crema_layer_fail(crema_layer *layer, crema_status status, const char *message);
/* The provider's state of layer i of a net; NULL for other layers. */
void *crema_net_layer_state(const crema_net *net, int i);
/* ---- ONNX export -------------------------------------------------------- */

/* Writes the net as it is now (its input shapes, its weights) as an ONNX
 * model, atomically. opset: 0 for CREMA_ONNX_OPSET_DEFAULT, else
 * CREMA_ONNX_OPSET_MIN..MAX. Axis 0 of every input is the symbolic batch
 * "N" unless flags has CREMA_ONNX_FIXED_BATCH. A layer without an ONNX
 * equivalent fails the export (CREMA_ERR_UNSUPPORTED) with a message naming
 * it and why. */
#define CREMA_ONNX_OPSET_MIN 13
#define CREMA_ONNX_OPSET_MAX 21
#define CREMA_ONNX_OPSET_DEFAULT 17
#define CREMA_ONNX_FIXED_BATCH 1u
crema_status crema_net_export_onnx(crema_net *net, const char *path, int opset, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif
