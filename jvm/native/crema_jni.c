/* libcrema_jni: crema's C API for the JVM front end (com.yahoo.ml.caffe),
 * the native methods of com.yahoo.ml.caffe.crema.Native. Feeders hold a
 * rank's partition in C memory and feed whole batches, so a training step
 * costs one JNI call to feed and one to step; every failure the C API
 * reports becomes a CremaException carrying crema_errmsg(). */
#include <jni.h>

#include "crema.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXC_CLASS "com/yahoo/ml/caffe/crema/CremaException"
#define DIST_EXC_CLASS "com/yahoo/ml/caffe/crema/CremaDistException"

/* ---- errors ---------------------------------------------------------- */

static void throw_message(JNIEnv *env, int status, const char *msg)
{
    if ((*env)->ExceptionCheck(env))
        return;
    jclass cls = (*env)->FindClass(env, status == CREMA_ERR_DIST ? DIST_EXC_CLASS : EXC_CLASS);
    if (!cls)
        return; /* NoClassDefFoundError is pending */
    jmethodID ctor = (*env)->GetMethodID(env, cls, "<init>", "(ILjava/lang/String;)V");
    if (!ctor)
        return;
    jstring jmsg = (*env)->NewStringUTF(env, msg && *msg ? msg : crema_status_name((crema_status)status));
    if (!jmsg)
        return;
    jobject exc = (*env)->NewObject(env, cls, ctor, (jint)status, jmsg);
    if (exc)
        (*env)->Throw(env, (jthrowable)exc);
}

static void throw_fmt(JNIEnv *env, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void throw_fmt(JNIEnv *env, int status, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    throw_message(env, status, buf);
}

/* Throws for a failed status (with crema_errmsg()); true when it did. */
static int failed(JNIEnv *env, crema_status rc)
{
    if (rc == CREMA_OK)
        return 0;
    throw_message(env, (int)rc, crema_errmsg());
    return 1;
}

/* ---- strings and handles ----------------------------------------------- */

/* A Java string as modified UTF-8 for the length of a call; NULL for a
 * null string (when allowed) or on failure (with an exception pending). */
static const char *str_get(JNIEnv *env, jstring s, int nullable, const char *what)
{
    if (!s) {
        if (!nullable)
            throw_fmt(env, CREMA_ERR_INVALID, "%s is null", what);
        return NULL;
    }
    return (*env)->GetStringUTFChars(env, s, NULL);
}

static void str_release(JNIEnv *env, jstring s, const char *c)
{
    if (s && c)
        (*env)->ReleaseStringUTFChars(env, s, c);
}

static void *handle(JNIEnv *env, jlong h, const char *what)
{
    if (!h)
        throw_fmt(env, CREMA_ERR_INVALID, "%s is closed", what);
    return (void *)(intptr_t)h;
}

static jlong to_handle(void *p)
{
    return (jlong)(intptr_t)p;
}

/* A direct buffer's memory, checked to hold at least bytes. */
static void *direct(JNIEnv *env, jobject buf, size_t bytes, const char *what)
{
    if (!buf) {
        throw_fmt(env, CREMA_ERR_INVALID, "%s: the buffer is null", what);
        return NULL;
    }
    void *p = (*env)->GetDirectBufferAddress(env, buf);
    jlong cap = (*env)->GetDirectBufferCapacity(env, buf);
    if (!p || cap < 0) {
        throw_fmt(env, CREMA_ERR_INVALID, "%s: not a direct buffer", what);
        return NULL;
    }
    /* capacity counts elements of the buffer's own type: callers give bytes
     * of ByteBuffers and the element size of typed ones in `bytes` */
    if ((size_t)cap < bytes) {
        throw_fmt(env, CREMA_ERR_INVALID, "%s: the buffer holds %lld, %zu needed", what, (long long)cap, bytes);
        return NULL;
    }
    return p;
}

static jobjectArray string_array(JNIEnv *env, int n, const char *(*get)(const crema_net *, int), const crema_net *net)
{
    jclass cls = (*env)->FindClass(env, "java/lang/String");
    if (!cls)
        return NULL;
    jobjectArray arr = (*env)->NewObjectArray(env, n, cls, NULL);
    for (int i = 0; arr && i < n; i++) {
        const char *s = get(net, i);
        jstring js = (*env)->NewStringUTF(env, s ? s : "");
        if (!js)
            return NULL;
        (*env)->SetObjectArrayElement(env, arr, i, js);
        (*env)->DeleteLocalRef(env, js);
    }
    return arr;
}

/* ---- library ------------------------------------------------------------ */

JNIEXPORT jstring JNICALL Java_com_yahoo_ml_caffe_crema_Native_version(JNIEnv *env, jclass cls)
{
    (void)cls;
    return (*env)->NewStringUTF(env, crema_version());
}

JNIEXPORT jstring JNICALL Java_com_yahoo_ml_caffe_crema_Native_statusName(JNIEnv *env, jclass cls, jint status)
{
    (void)cls;
    return (*env)->NewStringUTF(env, crema_status_name((crema_status)status));
}

JNIEXPORT jbyteArray JNICALL Java_com_yahoo_ml_caffe_crema_Native_textToBinary(JNIEnv *env, jclass cls,
                                                                               jstring jmessage, jbyteArray jtext,
                                                                               jstring jname)
{
    (void)cls;
    if (!jtext) {
        throw_message(env, CREMA_ERR_INVALID, "textToBinary: the text is null");
        return NULL;
    }
    const char *message = str_get(env, jmessage, 0, "the message type");
    const char *name = message ? str_get(env, jname, 1, "the name") : NULL;
    jbyteArray result = NULL;
    if (message && !(*env)->ExceptionCheck(env)) {
        jsize len = (*env)->GetArrayLength(env, jtext);
        jbyte *text = (*env)->GetByteArrayElements(env, jtext, NULL);
        uint8_t *out = NULL;
        size_t out_len = 0;
        if (text) {
            crema_status rc = crema_proto_text_to_binary(message, (const char *)text, (size_t)len, name, &out,
                                                         &out_len);
            (*env)->ReleaseByteArrayElements(env, jtext, text, JNI_ABORT);
            if (!failed(env, rc)) {
                if (out_len > INT32_MAX)
                    throw_fmt(env, CREMA_ERR_NOMEM, "%s: %zu bytes do not fit a Java array", name ? name : message,
                              out_len);
                else if ((result = (*env)->NewByteArray(env, (jsize)out_len)))
                    (*env)->SetByteArrayRegion(env, result, 0, (jsize)out_len, (const jbyte *)out);
            }
            crema_free(out);
        }
    }
    str_release(env, jname, name);
    str_release(env, jmessage, message);
    return result;
}

JNIEXPORT jbyteArray JNICALL Java_com_yahoo_ml_caffe_crema_Native_binaryToText(JNIEnv *env, jclass cls,
                                                                               jstring jmessage, jbyteArray jdata)
{
    (void)cls;
    if (!jdata) {
        throw_message(env, CREMA_ERR_INVALID, "binaryToText: the data is null");
        return NULL;
    }
    const char *message = str_get(env, jmessage, 0, "the message type");
    if (!message)
        return NULL;
    jbyteArray result = NULL;
    jsize len = (*env)->GetArrayLength(env, jdata);
    jbyte *data = (*env)->GetByteArrayElements(env, jdata, NULL);
    if (data) {
        char *text = NULL;
        size_t n = 0;
        crema_status rc = crema_proto_binary_to_text(message, (const uint8_t *)data, (size_t)len, &text, &n);
        (*env)->ReleaseByteArrayElements(env, jdata, data, JNI_ABORT);
        if (!failed(env, rc)) {
            if (n > INT32_MAX)
                throw_fmt(env, CREMA_ERR_NOMEM, "%s: %zu bytes of text do not fit a Java array", message, n);
            else if ((result = (*env)->NewByteArray(env, (jsize)n)))
                (*env)->SetByteArrayRegion(env, result, 0, (jsize)n, (const jbyte *)text);
        }
        crema_free(text);
    }
    str_release(env, jmessage, message);
    return result;
}

JNIEXPORT jlong JNICALL Java_com_yahoo_ml_caffe_crema_Native_dbCount(JNIEnv *env, jclass cls, jstring jpath,
                                                                     jstring jbackend)
{
    (void)cls;
    const char *path = str_get(env, jpath, 0, "the database path");
    const char *backend = path ? str_get(env, jbackend, 0, "the backend") : NULL;
    size_t n = 0;
    if (path && backend)
        failed(env, crema_db_count(path, backend, &n));
    str_release(env, jbackend, backend);
    str_release(env, jpath, path);
    return (jlong)n;
}

/* The keys of a rank's shard of a database, each a byte[] (the caller
 * decodes them: keys need not be UTF-8). */
JNIEXPORT jobjectArray JNICALL Java_com_yahoo_ml_caffe_crema_Native_dbKeys(JNIEnv *env, jclass cls, jstring jpath,
                                                                           jstring jbackend, jint rank, jint size)
{
    (void)cls;
    const char *path = str_get(env, jpath, 0, "the database path");
    const char *backend = path ? str_get(env, jbackend, 0, "the backend") : NULL;
    uint8_t *keys = NULL;
    size_t *offsets = NULL, n = 0;
    jobjectArray arr = NULL;
    if (path && backend && !failed(env, crema_db_keys(path, backend, rank, size, &keys, &offsets, &n))) {
        jclass bytes = (*env)->FindClass(env, "[B");
        if (n > INT32_MAX)
            throw_fmt(env, CREMA_ERR_NOMEM, "%s: %zu keys do not fit a Java array", path, n);
        else if (bytes)
            arr = (*env)->NewObjectArray(env, (jsize)n, bytes, NULL);
        for (size_t i = 0; arr && i < n; i++) {
            jsize len = (jsize)(offsets[i + 1] - offsets[i]);
            jbyteArray key = (*env)->NewByteArray(env, len);
            if (!key) {
                arr = NULL;
                break;
            }
            (*env)->SetByteArrayRegion(env, key, 0, len, (const jbyte *)keys + offsets[i]);
            (*env)->SetObjectArrayElement(env, arr, (jsize)i, key);
            (*env)->DeleteLocalRef(env, key);
        }
    }
    crema_free(keys);
    crema_free(offsets);
    str_release(env, jbackend, backend);
    str_release(env, jpath, path);
    return arr;
}

/* ---- nets ---------------------------------------------------------------- */

JNIEXPORT jlong JNICALL Java_com_yahoo_ml_caffe_crema_Native_netOpen(JNIEnv *env, jclass cls, jstring jproto,
                                                                     jstring jweights, jint phase)
{
    (void)cls;
    const char *proto = str_get(env, jproto, 0, "the net prototxt");
    const char *weights = proto ? str_get(env, jweights, 1, "the weights") : NULL;
    crema_net *net = NULL;
    if (proto && !(*env)->ExceptionCheck(env))
        failed(env, crema_net_open(proto, weights, (crema_phase)phase, &net));
    str_release(env, jweights, weights);
    str_release(env, jproto, proto);
    return to_handle(net);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_netFree(JNIEnv *env, jclass cls, jlong h)
{
    (void)env;
    (void)cls;
    crema_net_free((crema_net *)(intptr_t)h);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_netSaveWeights(JNIEnv *env, jclass cls, jlong h,
                                                                           jstring jpath)
{
    (void)cls;
    crema_net *net = handle(env, h, "the net");
    const char *path = net ? str_get(env, jpath, 0, "the weights path") : NULL;
    if (path)
        failed(env, crema_net_save_weights(net, path));
    str_release(env, jpath, path);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_netLoadWeights(JNIEnv *env, jclass cls, jlong h,
                                                                           jstring jpath)
{
    (void)cls;
    crema_net *net = handle(env, h, "the net");
    const char *path = net ? str_get(env, jpath, 0, "the weights path") : NULL;
    if (path)
        failed(env, crema_net_load_weights(net, path));
    str_release(env, jpath, path);
}

JNIEXPORT jfloat JNICALL Java_com_yahoo_ml_caffe_crema_Native_netForward(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    crema_net *net = handle(env, h, "the net");
    float loss = 0;
    if (net)
        failed(env, crema_net_forward(net, &loss));
    return loss;
}

JNIEXPORT jobjectArray JNICALL Java_com_yahoo_ml_caffe_crema_Native_netOutputs(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    crema_net *net = handle(env, h, "the net");
    return net ? string_array(env, crema_net_num_outputs(net), crema_net_output_name, net) : NULL;
}

JNIEXPORT jintArray JNICALL Java_com_yahoo_ml_caffe_crema_Native_blobShape(JNIEnv *env, jclass cls, jlong h,
                                                                           jstring jname)
{
    (void)cls;
    crema_net *net = handle(env, h, "the net");
    const char *name = net ? str_get(env, jname, 0, "the blob name") : NULL;
    jintArray result = NULL;
    crema_blob b;
    if (name && !failed(env, crema_net_blob(net, name, &b))) {
        result = (*env)->NewIntArray(env, b.num_axes);
        if (result)
            (*env)->SetIntArrayRegion(env, result, 0, b.num_axes, b.shape);
    }
    str_release(env, jname, name);
    return result;
}

/* Copies a blob's data into dst, which must hold exactly its values. */
JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_blobData(JNIEnv *env, jclass cls, jlong h, jstring jname,
                                                                     jfloatArray dst)
{
    (void)cls;
    crema_net *net = handle(env, h, "the net");
    const char *name = net ? str_get(env, jname, 0, "the blob name") : NULL;
    crema_blob b;
    if (name && dst && !failed(env, crema_net_blob(net, name, &b))) {
        jsize n = (*env)->GetArrayLength(env, dst);
        if ((size_t)n != b.count)
            throw_fmt(env, CREMA_ERR_SHAPE, "blob %s holds %zu values, the array %d", name, b.count, (int)n);
        else
            (*env)->SetFloatArrayRegion(env, dst, 0, n, b.data);
    }
    str_release(env, jname, name);
}

/* Caffe's ShareTrainedLayersWith before a test: every parameter of dst's
 * layers gets the values of the layer of the same name in src. */
JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_netCopyParams(JNIEnv *env, jclass cls, jlong hsrc,
                                                                          jlong hdst)
{
    (void)cls;
    crema_net *src = handle(env, hsrc, "the source net");
    crema_net *dst = src ? handle(env, hdst, "the destination net") : NULL;
    if (!dst)
        return;
    for (int i = 0; i < crema_net_num_layers(dst); i++) {
        const char *layer = crema_net_layer_name(dst, i);
        int np = crema_net_layer_num_params(dst, i);
        for (int j = 0; j < np; j++) {
            crema_blob from, to;
            if (crema_net_param(src, layer, j, &from) != CREMA_OK)
                break; /* a layer the source net does not have */
            if (failed(env, crema_net_param(dst, layer, j, &to)))
                return;
            if (from.count != to.count) {
                throw_fmt(env, CREMA_ERR_SHAPE, "layer %s parameter %d: %zu values in the train net, %zu in the test net",
                          layer, j, from.count, to.count);
                return;
            }
            memcpy(to.data, from.data, to.count * sizeof(float));
        }
    }
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_netSetDataShard(JNIEnv *env, jclass cls, jlong h,
                                                                            jstring jlayer, jint rank, jint size)
{
    (void)cls;
    crema_net *net = handle(env, h, "the net");
    const char *layer = net ? str_get(env, jlayer, 0, "the layer name") : NULL;
    if (layer)
        failed(env, crema_net_set_data_shard(net, layer, rank, size));
    str_release(env, jlayer, layer);
}

/* ---- solvers --------------------------------------------------------------- */

JNIEXPORT jlong JNICALL Java_com_yahoo_ml_caffe_crema_Native_solverOpen(JNIEnv *env, jclass cls, jstring jpath,
                                                                        jboolean log)
{
    (void)cls;
    const char *path = str_get(env, jpath, 0, "the solver prototxt");
    crema_solver *s = NULL;
    if (path)
        failed(env, crema_solver_open(path, log ? 1 : 0, &s));
    str_release(env, jpath, path);
    return to_handle(s);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_solverFree(JNIEnv *env, jclass cls, jlong h)
{
    (void)env;
    (void)cls;
    crema_solver_free((crema_solver *)(intptr_t)h);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_solverStep(JNIEnv *env, jclass cls, jlong h, jint iters)
{
    (void)cls;
    crema_solver *s = handle(env, h, "the solver");
    if (s)
        failed(env, crema_solver_step(s, iters));
}

JNIEXPORT jint JNICALL Java_com_yahoo_ml_caffe_crema_Native_solverIter(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    crema_solver *s = handle(env, h, "the solver");
    return s ? crema_solver_iter(s) : 0;
}

JNIEXPORT jlong JNICALL Java_com_yahoo_ml_caffe_crema_Native_solverNet(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    crema_solver *s = handle(env, h, "the solver");
    return s ? to_handle(crema_solver_net(s)) : 0;
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_solverRestore(JNIEnv *env, jclass cls, jlong h,
                                                                          jstring jstate, jstring jweights)
{
    (void)cls;
    crema_solver *s = handle(env, h, "the solver");
    const char *state = s ? str_get(env, jstate, 0, "the solver state") : NULL;
    const char *weights = state ? str_get(env, jweights, 1, "the weights") : NULL;
    if (state && !(*env)->ExceptionCheck(env))
        failed(env, weights ? crema_solver_restore_weights(s, state, weights) : crema_solver_restore(s, state));
    str_release(env, jweights, weights);
    str_release(env, jstate, state);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_solverSnapshotTo(JNIEnv *env, jclass cls, jlong h,
                                                                             jstring jprefix)
{
    (void)cls;
    crema_solver *s = handle(env, h, "the solver");
    const char *prefix = s ? str_get(env, jprefix, 0, "the snapshot prefix") : NULL;
    if (prefix)
        failed(env, crema_solver_snapshot_to(s, prefix));
    str_release(env, jprefix, prefix);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_solverSetDist(JNIEnv *env, jclass cls, jlong h,
                                                                          jlong hd)
{
    (void)cls;
    crema_solver *s = handle(env, h, "the solver");
    crema_dist *d = s ? handle(env, hd, "the rank") : NULL;
    if (d)
        failed(env, crema_solver_set_dist(s, d));
}

/* ---- ranks ------------------------------------------------------------------ */

JNIEXPORT jlong JNICALL Java_com_yahoo_ml_caffe_crema_Native_distOpen(JNIEnv *env, jclass cls, jint rank, jint size,
                                                                      jstring jaddress, jstring jsecret,
                                                                      jint timeout_ms)
{
    (void)cls;
    const char *address = str_get(env, jaddress, 0, "the rendezvous address");
    const char *secret = address ? str_get(env, jsecret, 0, "the secret") : NULL;
    crema_dist *d = NULL;
    if (address && secret)
        failed(env, crema_dist_open(rank, size, address, secret, timeout_ms, &d));
    str_release(env, jsecret, secret);
    str_release(env, jaddress, address);
    return to_handle(d);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_distFree(JNIEnv *env, jclass cls, jlong h)
{
    (void)env;
    (void)cls;
    crema_dist_free((crema_dist *)(intptr_t)h);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_distAllreduce(JNIEnv *env, jclass cls, jlong h,
                                                                          jfloatArray jbuf)
{
    (void)cls;
    crema_dist *d = handle(env, h, "the rank");
    if (!d || !jbuf)
        return;
    jsize n = (*env)->GetArrayLength(env, jbuf);
    jfloat *buf = (*env)->GetFloatArrayElements(env, jbuf, NULL);
    if (!buf)
        return;
    crema_status rc = crema_dist_allreduce(d, buf, (size_t)n);
    (*env)->ReleaseFloatArrayElements(env, jbuf, buf, rc == CREMA_OK ? 0 : JNI_ABORT);
    failed(env, rc);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_distBarrier(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    crema_dist *d = handle(env, h, "the rank");
    if (d)
        failed(env, crema_dist_barrier(d));
}

/* ---- feeders ------------------------------------------------------------------ */

/* One column of samples held in C: fixed-size floats (numeric tops, and
 * labels), fixed-size bytes (raw images) or variable-size bytes (encoded
 * images, with offsets). */
enum column_kind { COL_FLOATS, COL_RAW, COL_BYTES };

struct column {
    enum column_kind kind;
    size_t sample; /* floats or bytes per sample (COL_FLOATS, COL_RAW) */
    int n;
    uint8_t *data; /* bytes, or floats as bytes */
    size_t len, cap;
    size_t *offs; /* COL_BYTES: n + 1 offsets */
    size_t offs_cap;
};

enum feeder_kind { FEED_IMAGES, FEED_COS, FEED_LMDB };

struct feeder {
    enum feeder_kind kind;
    int n_cols; /* FEED_IMAGES: column 0 images, 1 labels; FEED_COS: one per top */
    struct column *cols;
    int encoded, channels, height, width; /* FEED_IMAGES */
    crema_net *reader;                     /* FEED_LMDB */
    /* batch scratch */
    uint8_t *scratch;
    size_t scratch_cap;
    size_t *lens;
    size_t lens_cap;
    float *labels;
    size_t labels_cap;
};

static int grow(JNIEnv *env, void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) {
            throw_fmt(env, CREMA_ERR_NOMEM, "feeder: %zu elements of %zu bytes are too many", need, elem);
            return -1;
        }
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) {
        throw_fmt(env, CREMA_ERR_NOMEM, "feeder: out of memory for %zu bytes", c * elem);
        return -1;
    }
    *p = q;
    *cap = c;
    return 0;
}

static int column_append(JNIEnv *env, struct column *c, const uint8_t *data, size_t bytes, const size_t *lens, int n)
{
    if (grow(env, (void **)&c->data, &c->cap, c->len + bytes, 1))
        return -1;
    if (c->kind == COL_BYTES) {
        if (grow(env, (void **)&c->offs, &c->offs_cap, (size_t)c->n + (size_t)n + 1, sizeof *c->offs))
            return -1;
        if (c->n == 0)
            c->offs[0] = 0;
        size_t off = c->len;
        for (int i = 0; i < n; i++) {
            off += lens[i];
            c->offs[c->n + i + 1] = off;
        }
        if (off != c->len + bytes) {
            throw_fmt(env, CREMA_ERR_INVALID, "feeder: the lengths add up to %zu bytes, the buffer holds %zu",
                      off - c->len, bytes);
            return -1;
        }
    }
    memcpy(c->data + c->len, data, bytes);
    c->len += bytes;
    c->n += n;
    return 0;
}

/* Rows start, start+1, ... (count of them, wrapping around the column's n)
 * back to back in the feeder's scratch; for COL_BYTES their lengths in
 * f->lens. */
static const uint8_t *column_gather(JNIEnv *env, struct feeder *f, struct column *c, long start, int count)
{
    if (c->n == 0) {
        throw_message(env, CREMA_ERR_INVALID, "feeder: no samples");
        return NULL;
    }
    size_t bytes = 0;
    if (c->kind == COL_BYTES) {
        if (grow(env, (void **)&f->lens, &f->lens_cap, (size_t)count, sizeof *f->lens))
            return NULL;
        for (int i = 0; i < count; i++) {
            long r = (start + i) % c->n;
            f->lens[i] = c->offs[r + 1] - c->offs[r];
            bytes += f->lens[i];
        }
    } else {
        size_t row = c->sample * (c->kind == COL_FLOATS ? sizeof(float) : 1);
        bytes = row * (size_t)count;
    }
    if (grow(env, (void **)&f->scratch, &f->scratch_cap, bytes ? bytes : 1, 1))
        return NULL;
    size_t off = 0;
    for (int i = 0; i < count;) {
        long r = (start + i) % c->n;
        /* the longest run of consecutive rows from r */
        int run = count - i;
        if (r + run > c->n)
            run = (int)(c->n - r);
        size_t from, len;
        if (c->kind == COL_BYTES) {
            from = c->offs[r];
            len = c->offs[r + run] - from;
        } else {
            size_t row = c->sample * (c->kind == COL_FLOATS ? sizeof(float) : 1);
            from = (size_t)r * row;
            len = (size_t)run * row;
        }
        memcpy(f->scratch + off, c->data + from, len);
        off += len;
        i += run;
    }
    return f->scratch;
}

static struct feeder *feeder_new(JNIEnv *env, enum feeder_kind kind, int n_cols)
{
    struct feeder *f = calloc(1, sizeof *f);
    if (f && n_cols > 0)
        f->cols = calloc((size_t)n_cols, sizeof *f->cols);
    if (!f || (n_cols > 0 && !f->cols)) {
        free(f);
        throw_message(env, CREMA_ERR_NOMEM, "feeder: out of memory");
        return NULL;
    }
    f->kind = kind;
    f->n_cols = n_cols;
    return f;
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_feederFree(JNIEnv *env, jclass cls, jlong h)
{
    (void)env;
    (void)cls;
    struct feeder *f = (struct feeder *)(intptr_t)h;
    if (!f)
        return;
    for (int i = 0; i < f->n_cols; i++) {
        free(f->cols[i].data);
        free(f->cols[i].offs);
    }
    free(f->cols);
    crema_net_free(f->reader);
    free(f->scratch);
    free(f->lens);
    free(f->labels);
    free(f);
}

JNIEXPORT jint JNICALL Java_com_yahoo_ml_caffe_crema_Native_feederCount(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    struct feeder *f = handle(env, h, "the feeder");
    return f && f->n_cols > 0 ? f->cols[0].n : 0;
}

/* Images for a MemoryData layer: raw (channels x height x width bytes each,
 * planar) or encoded files. */
JNIEXPORT jlong JNICALL Java_com_yahoo_ml_caffe_crema_Native_imageFeederOpen(JNIEnv *env, jclass cls,
                                                                             jboolean encoded, jint channels,
                                                                             jint height, jint width)
{
    (void)cls;
    if (!encoded && (channels <= 0 || height <= 0 || width <= 0)) {
        throw_fmt(env, CREMA_ERR_INVALID, "raw images need channels, height and width (got %d x %d x %d)",
                  (int)channels, (int)height, (int)width);
        return 0;
    }
    struct feeder *f = feeder_new(env, FEED_IMAGES, 2);
    if (!f)
        return 0;
    f->encoded = encoded ? 1 : 0;
    f->channels = channels;
    f->height = height;
    f->width = width;
    f->cols[0].kind = encoded ? COL_BYTES : COL_RAW;
    f->cols[0].sample = encoded ? 0 : (size_t)channels * (size_t)height * (size_t)width;
    f->cols[1].kind = COL_FLOATS;
    f->cols[1].sample = 1;
    return to_handle(f);
}

/* Appends n images: their bytes back to back in data (bytes of them), their
 * lengths in lens (a direct LongBuffer; null for raw images) and their
 * labels in labels (a direct FloatBuffer). */
JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_imageFeederAdd(JNIEnv *env, jclass cls, jlong h,
                                                                           jobject jdata, jlong bytes, jobject jlens,
                                                                           jobject jlabels, jint n)
{
    (void)cls;
    struct feeder *f = handle(env, h, "the feeder");
    if (!f || n <= 0)
        return;
    if (f->kind != FEED_IMAGES) {
        throw_message(env, CREMA_ERR_INVALID, "imageFeederAdd: not an image feeder");
        return;
    }
    const uint8_t *data = direct(env, jdata, (size_t)bytes, "images");
    const float *labels = data ? direct(env, jlabels, (size_t)n, "labels") : NULL;
    if (!labels)
        return;
    size_t *lens = NULL;
    if (f->encoded) {
        const int64_t *l = direct(env, jlens, (size_t)n, "image lengths");
        if (!l)
            return;
        lens = malloc((size_t)n * sizeof *lens);
        if (!lens) {
            throw_message(env, CREMA_ERR_NOMEM, "feeder: out of memory");
            return;
        }
        for (int i = 0; i < n; i++) {
            if (l[i] < 0) {
                free(lens);
                throw_fmt(env, CREMA_ERR_INVALID, "image %d has a negative length", i);
                return;
            }
            lens[i] = (size_t)l[i];
        }
    } else if ((size_t)bytes != f->cols[0].sample * (size_t)n) {
        throw_fmt(env, CREMA_ERR_INVALID, "%d raw images of %d x %d x %d need %zu bytes, the buffer has %lld", (int)n,
                  f->channels, f->height, f->width, f->cols[0].sample * (size_t)n, (long long)bytes);
        return;
    }
    if (!column_append(env, &f->cols[0], data, (size_t)bytes, lens, n))
        column_append(env, &f->cols[1], (const uint8_t *)labels, (size_t)n * sizeof(float), NULL, n);
    free(lens);
}

/* Feeds count images from row start (wrapping) to a MemoryData layer:
 * channels, height, width as crema_net_set_memory_images takes them for
 * encoded images (decode as, resize to). */
JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_imageFeed(JNIEnv *env, jclass cls, jlong h, jlong hnet,
                                                                      jstring jlayer, jlong start, jint count,
                                                                      jint channels, jint height, jint width)
{
    (void)cls;
    struct feeder *f = handle(env, h, "the feeder");
    crema_net *net = f ? handle(env, hnet, "the net") : NULL;
    if (!net)
        return;
    if (f->kind != FEED_IMAGES || count <= 0) {
        throw_fmt(env, CREMA_ERR_INVALID, "imageFeed: not an image feeder, or %d images", (int)count);
        return;
    }
    if (grow(env, (void **)&f->labels, &f->labels_cap, (size_t)count, sizeof *f->labels))
        return;
    const uint8_t *lab = column_gather(env, f, &f->cols[1], start, count);
    if (!lab)
        return;
    memcpy(f->labels, lab, (size_t)count * sizeof(float));
    const uint8_t *img = column_gather(env, f, &f->cols[0], start, count);
    if (!img)
        return;
    const char *layer = str_get(env, jlayer, 0, "the layer name");
    if (!layer)
        return;
    crema_status rc = f->encoded ? crema_net_set_memory_images(net, layer, img, f->lens, count, channels, height,
                                                               width, f->labels)
                                 : crema_net_set_memory_images(net, layer, img, NULL, count, f->channels, f->height,
                                                               f->width, f->labels);
    str_release(env, jlayer, layer);
    failed(env, rc);
}

/* A CoSData layer's columns: kinds[i] is 0 for floats (sizes[i] per
 * sample), 1 for raw image bytes (sizes[i] per sample), 2 for encoded. */
JNIEXPORT jlong JNICALL Java_com_yahoo_ml_caffe_crema_Native_cosFeederOpen(JNIEnv *env, jclass cls,
                                                                           jintArray jkinds, jlongArray jsizes)
{
    (void)cls;
    if (!jkinds || !jsizes) {
        throw_message(env, CREMA_ERR_INVALID, "cosFeederOpen: null kinds or sizes");
        return 0;
    }
    jsize n = (*env)->GetArrayLength(env, jkinds);
    if (n <= 0 || (*env)->GetArrayLength(env, jsizes) != n) {
        throw_fmt(env, CREMA_ERR_INVALID, "cosFeederOpen: %d kinds and %d sizes", (int)n,
                  (int)(*env)->GetArrayLength(env, jsizes));
        return 0;
    }
    jint kinds[256];
    jlong sizes[256];
    if (n > 256) {
        throw_fmt(env, CREMA_ERR_UNSUPPORTED, "a CoSData layer with %d tops (crema feeds up to 256)", (int)n);
        return 0;
    }
    (*env)->GetIntArrayRegion(env, jkinds, 0, n, kinds);
    (*env)->GetLongArrayRegion(env, jsizes, 0, n, sizes);
    struct feeder *f = feeder_new(env, FEED_COS, n);
    if (!f)
        return 0;
    for (int i = 0; i < n; i++) {
        if (kinds[i] < 0 || kinds[i] > 2 || sizes[i] < 0) {
            Java_com_yahoo_ml_caffe_crema_Native_feederFree(env, cls, to_handle(f));
            throw_fmt(env, CREMA_ERR_INVALID, "cosFeederOpen: column %d has kind %d, size %lld", i, (int)kinds[i],
                      (long long)sizes[i]);
            return 0;
        }
        f->cols[i].kind = kinds[i] == 0 ? COL_FLOATS : kinds[i] == 1 ? COL_RAW : COL_BYTES;
        f->cols[i].sample = (size_t)sizes[i];
    }
    return to_handle(f);
}

/* Appends n samples to column col: floats (n x size, a direct FloatBuffer),
 * raw bytes (n x size) or encoded files with their lengths. */
JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_cosFeederAdd(JNIEnv *env, jclass cls, jlong h, jint col,
                                                                         jobject jdata, jlong bytes, jobject jlens,
                                                                         jint n)
{
    (void)cls;
    struct feeder *f = handle(env, h, "the feeder");
    if (!f || n <= 0)
        return;
    if (f->kind != FEED_COS || col < 0 || col >= f->n_cols) {
        throw_fmt(env, CREMA_ERR_INVALID, "cosFeederAdd: no column %d", (int)col);
        return;
    }
    struct column *c = &f->cols[col];
    size_t need = c->kind == COL_BYTES ? (size_t)bytes
                                       : c->sample * (size_t)n * (c->kind == COL_FLOATS ? sizeof(float) : 1);
    if (c->kind != COL_BYTES && (size_t)bytes != need) {
        throw_fmt(env, CREMA_ERR_INVALID, "column %d: %d samples of %zu need %zu bytes, got %lld", (int)col, (int)n,
                  c->sample, need, (long long)bytes);
        return;
    }
    const uint8_t *data = direct(env, jdata, c->kind == COL_FLOATS ? need / sizeof(float) : need, "column data");
    if (!data)
        return;
    size_t *lens = NULL;
    if (c->kind == COL_BYTES) {
        const int64_t *l = direct(env, jlens, (size_t)n, "column lengths");
        if (!l)
            return;
        lens = malloc((size_t)n * sizeof *lens);
        if (!lens) {
            throw_message(env, CREMA_ERR_NOMEM, "feeder: out of memory");
            return;
        }
        for (int i = 0; i < n; i++)
            lens[i] = l[i] < 0 ? 0 : (size_t)l[i];
    }
    column_append(env, c, data, need, lens, n);
    free(lens);
}

JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_cosFeed(JNIEnv *env, jclass cls, jlong h, jlong hnet,
                                                                    jstring jlayer, jlong start, jint count)
{
    (void)cls;
    struct feeder *f = handle(env, h, "the feeder");
    crema_net *net = f ? handle(env, hnet, "the net") : NULL;
    if (!net)
        return;
    if (f->kind != FEED_COS || count <= 0) {
        throw_fmt(env, CREMA_ERR_INVALID, "cosFeed: not a CoSData feeder, or %d samples", (int)count);
        return;
    }
    for (int i = 1; i < f->n_cols; i++)
        if (f->cols[i].n != f->cols[0].n) {
            throw_fmt(env, CREMA_ERR_INVALID, "CoSData columns hold %d and %d samples", f->cols[0].n, f->cols[i].n);
            return;
        }
    const char *layer = str_get(env, jlayer, 0, "the layer name");
    if (!layer)
        return;
    for (int i = 0; i < f->n_cols; i++) {
        const uint8_t *p = column_gather(env, f, &f->cols[i], start, count);
        if (!p || failed(env, crema_net_set_cos_data(net, layer, i, p, f->cols[i].kind == COL_BYTES ? f->lens : NULL,
                                                     count)))
            break;
    }
    str_release(env, jlayer, layer);
}

/* An LMDB shard read by crema's Data layer in a reader net (the prototxt at
 * path, its Data layer "data" with tops data and label). */
JNIEXPORT jlong JNICALL Java_com_yahoo_ml_caffe_crema_Native_lmdbFeederOpen(JNIEnv *env, jclass cls, jstring jpath,
                                                                            jint phase, jint rank, jint size)
{
    (void)cls;
    const char *path = str_get(env, jpath, 0, "the reader prototxt");
    if (!path)
        return 0;
    crema_net *reader = NULL;
    crema_status rc = crema_net_open(path, NULL, (crema_phase)phase, &reader);
    str_release(env, jpath, path);
    if (failed(env, rc))
        return 0;
    if (failed(env, crema_net_set_data_shard(reader, "data", rank, size))) {
        crema_net_free(reader);
        return 0;
    }
    struct feeder *f = feeder_new(env, FEED_LMDB, 0);
    if (!f) {
        crema_net_free(reader);
        return 0;
    }
    f->reader = reader;
    return to_handle(f);
}

/* Reads `batches` batches of the shard and feeds their first count samples
 * to a MemoryData layer; with no net (0) the batches are read and dropped,
 * which is how a resumed rank seeks. */
JNIEXPORT void JNICALL Java_com_yahoo_ml_caffe_crema_Native_lmdbFeed(JNIEnv *env, jclass cls, jlong h, jlong hnet,
                                                                     jstring jlayer, jint batches, jint count)
{
    (void)cls;
    struct feeder *f = handle(env, h, "the feeder");
    crema_net *net = (f && hnet) ? handle(env, hnet, "the net") : NULL;
    if (!f)
        return;
    if (f->kind != FEED_LMDB || batches <= 0) {
        throw_fmt(env, CREMA_ERR_INVALID, "lmdbFeed: not an LMDB feeder, or %d batches", (int)batches);
        return;
    }
    size_t per = 0, got = 0;
    for (int b = 0; b < batches; b++) {
        if (failed(env, crema_net_forward(f->reader, NULL)))
            return;
        crema_blob data, label;
        if (failed(env, crema_net_blob(f->reader, "data", &data)) || failed(env, crema_net_blob(f->reader, "label", &label)))
            return;
        int bn = data.num_axes > 0 ? data.shape[0] : 0;
        if (bn <= 0 || label.count != (size_t)bn) {
            throw_fmt(env, CREMA_ERR_SHAPE, "LMDB reader: a batch of %d with %zu labels", bn, label.count);
            return;
        }
        per = data.count / (size_t)bn;
        if (!net)
            continue; /* skipping */
        if (grow(env, (void **)&f->scratch, &f->scratch_cap, (got + (size_t)bn) * per * sizeof(float), 1) ||
            grow(env, (void **)&f->labels, &f->labels_cap, got + (size_t)bn, sizeof(float)))
            return;
        memcpy(f->scratch + got * per * sizeof(float), data.data, data.count * sizeof(float));
        memcpy(f->labels + got, label.data, (size_t)bn * sizeof(float));
        got += (size_t)bn;
    }
    if (!net)
        return;
    if (count <= 0 || (size_t)count > got) {
        throw_fmt(env, CREMA_ERR_INVALID, "lmdbFeed: %d samples asked, %zu read", (int)count, got);
        return;
    }
    const char *layer = str_get(env, jlayer, 0, "the layer name");
    if (!layer)
        return;
    crema_status rc = crema_net_set_memory_data(net, layer, (const float *)f->scratch, f->labels, count);
    str_release(env, jlayer, layer);
    failed(env, rc);
}
