/* The protobuf binary format: every caffemodel, solverstate and binaryproto
 * of the corpus and golden data reads and packs back to the same bytes;
 * damaged files give clear errors; legacy 4-D blobs; files over 2 GiB. */
#include "check.h"
#include "proto_testing.h"
#include "core/blob_proto.h"
#include "proto/proto_io.h"
#include "util/io.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *suffix;
    const ProtobufCMessageDescriptor *desc;
} kinds[] = {
    { ".caffemodel", &caffe__net_parameter__descriptor },
    { ".solverstate", &caffe__solver_state__descriptor },
    { ".binaryproto", &caffe__blob_proto__descriptor },
};

/* Caffe writes fields in number order and BlobProto data packed, as
 * protobuf-c does, so every file is expected to pack back byte for byte. */
static void corpus_binaries(void)
{
    const char *roots[] = { "corpus", "golden" };
    size_t total = 0, exact = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct pt_files ps = { 0 };
        for (int r = 0; r < 2; r++) {
            char *root = check_shared(roots[r]);
            pt_collect(root, kinds[k].suffix, &ps);
            free(root);
        }
        CHECK_MSG(ps.n > 0, "no %s files found", kinds[k].suffix);
        for (size_t i = 0; i < ps.n; i++) {
            uint8_t *data;
            size_t len;
            CHECK_OK(io_read_file(ps.v[i], IO_MAX_MESSAGE, &data, &len));
            if (!data)
                continue;
            ProtobufCMessage *m = NULL;
            CHECK_OK(proto_read_binary(ps.v[i], kinds[k].desc, &m));
            if (m) {
                total++;
                size_t plen;
                uint8_t *packed = pt_pack(m, &plen);
                if (plen == len && memcmp(packed, data, len) == 0)
                    exact++;
                else
                    check_fail(__FILE__, __LINE__, "%s: packs back to %zu bytes that differ from its %zu",
                               ps.v[i], plen, len);
                free(packed);
                proto_free(m);
            }
            free(data);
        }
        pt_files_free(&ps);
    }
    printf("  %zu binary files read, %zu packed back byte for byte\n", total, exact);
    CHECK(total > 300);
}

static const char *lenet(void)
{
    static char *path;
    if (!path)
        path = check_shared("corpus/formats/lenet_with_solverstate/lenet_iter_10000.caffemodel");
    return path;
}

static void damaged_files(void)
{
    uint8_t *data;
    size_t len;
    CHECK_OK(io_read_file(lenet(), IO_MAX_MESSAGE, &data, &len));
    if (!data)
        return;
    const ProtobufCMessageDescriptor *nd = &caffe__net_parameter__descriptor;
    ProtobufCMessage *m = NULL;
    size_t cuts[] = { len - 1, len / 2, 3, 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        int rc = proto_parse_binary(nd, data, cuts[i], "cut.caffemodel", &m);
        CHECK_MSG(rc == CREMA_ERR_PARSE && m == NULL, "a caffemodel cut to %zu bytes gave %d", cuts[i], rc);
        const char *msg = crema_errmsg();
        CHECK_MSG(strstr(msg, "cut.caffemodel") && strstr(msg, "not a valid caffe.NetParameter") &&
                      strstr(msg, "at byte"),
                  "message: %s", msg);
    }
    /* The half cut lands inside a layer's blob: the message says so. */
    proto_parse_binary(nd, data, len / 2, "cut.caffemodel", &m);
    CHECK_MSG(strstr(crema_errmsg(), "field layer (number 100)") && strstr(crema_errmsg(), "runs past the end"),
              "message: %s", crema_errmsg());

    /* Corrupt single bytes all over: an error or a message, never a crash. */
    uint8_t *bad = malloc(len);
    size_t failed = 0;
    for (size_t pos = 0; pos < len; pos += len / 97 + 1) {
        memcpy(bad, data, len);
        bad[pos] ^= 0xa5;
        m = NULL;
        int rc = proto_parse_binary(nd, bad, len, "bad.caffemodel", &m);
        CHECK(rc == 0 ? m != NULL : (m == NULL && strstr(crema_errmsg(), "bad.caffemodel")));
        failed += rc != 0;
        proto_free(m);
    }
    CHECK(failed > 0);
    free(bad);

    static const char junk[] = "this is a text file, not a model\n";
    CHECK(proto_parse_binary(nd, (const uint8_t *)junk, sizeof junk - 1, "junk", &m) == CREMA_ERR_PARSE);
    CHECK(strstr(crema_errmsg(), "junk: not a valid caffe.NetParameter (33 bytes)"));
    /* A required field missing: ClipParameter without max. */
    static const uint8_t clip_min_only[] = { 0x0d, 0, 0, 0x80, 0x3f };
    CHECK(proto_parse_binary(&caffe__clip_parameter__descriptor, clip_min_only, sizeof clip_min_only, "clip",
                             &m) == CREMA_ERR_PARSE);
    CHECK(strstr(crema_errmsg(), "clip: not a valid caffe.ClipParameter"));
    /* Empty input is an empty message. */
    CHECK_OK(proto_parse_binary(nd, data, 0, "empty", &m));
    proto_free(m);
    free(data);

    CHECK(proto_read_binary("/nonexistent/m.caffemodel", nd, &m) == CREMA_ERR_IO && m == NULL);
    CHECK(strstr(crema_errmsg(), "/nonexistent/m.caffemodel"));
}

/* Mean files store legacy num/channels/height/width; LeNet's caffemodel
 * stores BlobShape. Both give shapes whose count matches the data. */
static void legacy_blob_shapes(void)
{
    static const struct {
        const char *rel;
        int shape[4];
    } means[] = {
        { "corpus/formats/ilsvrc_2012_mean.binaryproto", { 1, 3, 256, 256 } },
        { "corpus/formats/sample_mean_pr1136/src/caffe/test/test_data/sample_mean.binaryproto", { 1, 3, 10, 10 } },
        { "golden/data/compute_image_mean/mean.binaryproto", { 1, 1, 28, 28 } },
    };
    for (size_t i = 0; i < sizeof means / sizeof means[0]; i++) {
        char *path = check_shared(means[i].rel);
        ProtobufCMessage *bm = NULL;
        CHECK_OK(proto_read_binary(path, &caffe__blob_proto__descriptor, &bm));
        if (bm) {
            const Caffe__BlobProto *bp = (const Caffe__BlobProto *)bm;
            CHECK_MSG(bp->shape == NULL && bp->has_num, "%s: expected a legacy 4-D blob", path);
            int na, shape[TENSOR_MAX_AXES];
            CHECK_OK(blob_proto_shape(bp, &na, shape));
            CHECK_EQ_INT(na, 4);
            for (int a = 0; a < 4 && na == 4; a++)
                CHECK_MSG(shape[a] == means[i].shape[a], "%s axis %d: expected %d, got %d", path, a,
                          means[i].shape[a], shape[a]);
            CHECK_EQ_INT(bp->n_data, (size_t)means[i].shape[1] * means[i].shape[2] * means[i].shape[3]);
            proto_free(bm);
        }
        free(path);
    }

    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_read_binary(lenet(), &caffe__net_parameter__descriptor, &m));
    if (!m)
        return;
    const Caffe__NetParameter *np = (const Caffe__NetParameter *)m;
    size_t legacy = 0, with_shape = 0;
    const Caffe__BlobProto *conv1_w = NULL;
    for (size_t i = 0; i < np->n_layer; i++) {
        const Caffe__LayerParameter *l = np->layer[i];
        for (size_t b = 0; b < l->n_blobs; b++) {
            const Caffe__BlobProto *bp = l->blobs[b];
            if (bp->shape)
                with_shape++;
            else if (bp->has_num)
                legacy++;
            if (strcmp(l->name, "conv1") == 0 && b == 0)
                conv1_w = bp;
            int na, shape[TENSOR_MAX_AXES];
            CHECK_OK(blob_proto_shape(bp, &na, shape));
            long long count = 1;
            for (int a = 0; a < na; a++)
                count *= shape[a];
            CHECK_MSG((size_t)count == bp->n_data, "%s blob %zu: shape count %lld, %zu values", l->name, b,
                      count, bp->n_data);
        }
    }
    CHECK_EQ_INT(with_shape + legacy, 8);
    CHECK_MSG(conv1_w != NULL, "no conv1 weights in %s", lenet());
    if (conv1_w) {
        int na, shape[TENSOR_MAX_AXES];
        CHECK_OK(blob_proto_shape(conv1_w, &na, shape));
        CHECK(na == 4 && shape[0] == 20 && shape[1] == 1 && shape[2] == 5 && shape[3] == 5);
    }
    proto_free(m);
}

static void write_and_read(void)
{
    char *dir = check_tmpdir("binary_format");
    char path[512], uri[600];
    snprintf(path, sizeof path, "%s/mean.binaryproto", dir);
    snprintf(uri, sizeof uri, "file:%s", path);
    Caffe__BlobProto bp = CAFFE__BLOB_PROTO__INIT;
    float vals[6] = { 1, -2, 3.5f, 0, 1e-30f, 7 };
    bp.n_data = 6;
    bp.data = vals;
    bp.has_num = bp.has_channels = bp.has_height = bp.has_width = 1;
    bp.num = 1;
    bp.channels = 1;
    bp.height = 2;
    bp.width = 3;
    CHECK_OK(proto_write_binary(uri, &bp.base));
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_read_binary(uri, &caffe__blob_proto__descriptor, &m));
    if (m) {
        Caffe__BlobProto *r = (Caffe__BlobProto *)m;
        CHECK(r->n_data == 6 && memcmp(r->data, vals, sizeof vals) == 0 && r->height == 2 && r->width == 3);
        proto_free(m);
    }
    free(dir);
}

/* Models over 2 GiB: three layers of 760 MB each. Needs about 9 GB of
 * memory, so it runs only when CREMA_BIG_TESTS is set. */
static void over_two_gib(void)
{
    if (!getenv("CREMA_BIG_TESTS")) {
        check_skip("set CREMA_BIG_TESTS=1 to write and read a 2.3 GB caffemodel");
        return;
    }
    const size_t per = 190u * 1000 * 1000; /* floats per layer */
    enum { NL = 3 };
    Caffe__NetParameter np = CAFFE__NET_PARAMETER__INIT;
    Caffe__LayerParameter layers[NL], *lp[NL];
    Caffe__BlobProto blobs[NL], *bpp[NL];
    for (int i = 0; i < NL; i++) {
        caffe__layer_parameter__init(&layers[i]);
        caffe__blob_proto__init(&blobs[i]);
        blobs[i].n_data = per;
        blobs[i].data = malloc(per * sizeof(float));
        for (size_t k = 0; k < per; k++)
            blobs[i].data[k] = (float)(k % 1000) + (float)i;
        bpp[i] = &blobs[i];
        layers[i].n_blobs = 1;
        layers[i].blobs = &bpp[i];
        layers[i].name = (char *)(i == 0 ? "a" : i == 1 ? "b" : "c");
        lp[i] = &layers[i];
    }
    np.n_layer = NL;
    np.layer = lp;
    char *dir = check_tmpdir("binary_big");
    char path[512];
    snprintf(path, sizeof path, "%s/big.caffemodel", dir);
    CHECK_OK(proto_write_binary(path, &np.base));
    for (int i = 0; i < NL; i++)
        free(blobs[i].data);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size > ((uint64_t)1 << 31));
    printf("  wrote %lld bytes\n", (long long)st.st_size);
    ProtobufCMessage *m = NULL;
    CHECK_OK(proto_read_binary(path, &caffe__net_parameter__descriptor, &m));
    if (m) {
        Caffe__NetParameter *r = (Caffe__NetParameter *)m;
        CHECK_EQ_INT(r->n_layer, NL);
        for (size_t i = 0; i < r->n_layer && i < NL; i++) {
            Caffe__BlobProto *b = r->layer[i]->blobs[0];
            CHECK_EQ_INT(b->n_data, per);
            CHECK(b->data[per - 1] == (float)((per - 1) % 1000) + (float)i);
        }
        proto_free(m);
    }
    unlink(path);
    free(dir);
}

CHECK_MAIN(CASE(corpus_binaries), CASE(damaged_files), CASE(legacy_blob_shapes), CASE(write_and_read),
           CASE(over_two_gib))
