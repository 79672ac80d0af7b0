/* The ImageData and WindowData layers, and CaffeOnSpark's MemoryData
 * sources: reading, shuffling, sharding, Caffe's window arithmetic, exact
 * resume positions, and the errors for missing, corrupt and empty input;
 * what all data layers share (batch_size limit, the data source table). */
#include "check.h"
#include "crema.h"
#include "data/datum.h"
#include "data/db.h"
#include "data/image.h"
#include "data/transformer.h"
#include "layers/data_source.h"
#include "layers/input.h"
#include "layers/layer.h"
#include "net/net.h"
#include "proto/proto_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A layer built alone from its text parameters; free with drop_layer. */
struct built {
    Caffe__LayerParameter *lp;
    struct layer *l;
    struct tensor *tops[2];
    struct rng rng;
};

static int build(struct built *b, const char *text, Caffe__Phase phase, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    b->tops[0] = tensor_new();
    b->tops[1] = tensor_new();
    rng_seed(&b->rng, seed);
    int rc = proto_parse_text(&caffe__layer_parameter__descriptor, text, strlen(text), "test",
                              (ProtobufCMessage **)&b->lp);
    if (!rc)
        rc = layer_create(b->lp, phase, &b->rng, NULL, 0, b->tops, 2, &b->l);
    return rc;
}

static int fwd(struct built *b)
{
    return b->l ? b->l->kind->forward(b->l, NULL, b->tops) : -1;
}

static void drop(struct built *b)
{
    layer_free(b->l);
    if (b->lp)
        proto_free(&b->lp->base);
    tensor_free(b->tops[0]);
    tensor_free(b->tops[1]);
    b->l = NULL;
    b->lp = NULL;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static bool has(const char *needle)
{
    return strstr(crema_errmsg(), needle) != NULL;
}

/* ---- ImageData ---- */

/* A list of the 53 cat/dog images with label = line index, so that order is visible. */
static char *indexed_list(const char *dir, const char *cd)
{
    char src[600], *out = malloc(600);
    snprintf(src, sizeof src, "%s/labels.txt", cd);
    snprintf(out, 600, "%s/indexed.txt", dir);
    FILE *in = fopen(src, "r"), *o = fopen(out, "w");
    CHECK(in && o);
    char line[512];
    int i = 0;
    while (in && o && fgets(line, sizeof line, in)) {
        char *sp = strrchr(line, ' ');
        if (sp)
            *sp = 0;
        fprintf(o, "%s %d\n", line, i++);
    }
    CHECK_EQ_INT(i, 53);
    if (in)
        fclose(in);
    if (o)
        fclose(o);
    return out;
}

static void image_data_catdog(void)
{
    char *cd = check_shared("corpus/caffeonspark/images_catdog");
    char text[2048];
    snprintf(text, sizeof text,
             "name: 'img' type: 'ImageData' top: 'data' top: 'label' "
             "image_data_param { source: '%s/labels.txt' root_folder: '%s/' batch_size: 53 new_height: 32 new_width: 24 }",
             cd, cd);
    struct built b;
    CHECK_OK(build(&b, text, CAFFE__PHASE__TEST, 1));
    CHECK_OK(fwd(&b));
    struct tensor *d = b.tops[0], *lab = b.tops[1];
    CHECK(d->num_axes == 4 && d->shape[0] == 53 && d->shape[1] == 3 && d->shape[2] == 32 && d->shape[3] == 24);
    CHECK_EQ_INT(lab->num_axes, 1);
    /* labels in list order: the file starts with cats (0) and has dogs (1) */
    char lp[600];
    snprintf(lp, sizeof lp, "%s/labels.txt", cd);
    FILE *f = fopen(lp, "r");
    char line[512];
    int i = 0, bad = 0;
    while (f && fgets(line, sizeof line, f) && i < 53)
        bad += atoi(strrchr(line, ' ') + 1) != (int)tensor_data(lab)[i++];
    if (f)
        fclose(f);
    CHECK_MSG(bad == 0 && i == 53, "%d of %d labels differ from labels.txt", bad, i);
    /* the pixels are cat1.jpg decoded BGR and resized bilinearly */
    struct image img, rs;
    char p1[600];
    snprintf(p1, sizeof p1, "%s/cat1.jpg", cd);
    CHECK_OK(image_read(p1, IMAGE_COLOR, &img));
    CHECK_OK(image_resize(&img, 32, 24, &rs));
    int diff = 0;
    for (int k = 0; k < 3 * 32 * 24; k++)
        diff += tensor_data(d)[k] != (float)rs.data[k];
    CHECK_MSG(diff == 0, "%d pixels of the first image differ from cat1.jpg resized", diff);
    image_free(&img);
    image_free(&rs);
    drop(&b);
    /* is_color false: one channel */
    snprintf(text, sizeof text,
             "name: 'img' type: 'ImageData' top: 'data' top: 'label' transform_param { crop_size: 20 scale: 0.5 } "
             "image_data_param { source: '%s/labels.txt' root_folder: '%s/' batch_size: 4 new_height: 30 "
             "new_width: 30 is_color: false }",
             cd, cd);
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 1));
    CHECK_OK(fwd(&b));
    CHECK(b.tops[0]->shape[1] == 1 && b.tops[0]->shape[2] == 20 && b.tops[0]->shape[3] == 20);
    float mx = 0;
    for (size_t k = 0; k < b.tops[0]->count; k++)
        mx = fmaxf(mx, tensor_data(b.tops[0])[k]);
    CHECK_MSG(mx > 20 && mx <= 127.5f, "scaled gray maximum %g", mx);
    drop(&b);
    /* without new_height/new_width, images of different sizes cannot share a batch */
    char *dir = check_tmpdir("imgsizes"), list[700];
    char *td = check_shared("corpus/formats/sample_mean_pr1136/src/caffe/test/test_data");
    snprintf(list, sizeof list, "%s/sizes.txt", dir);
    FILE *lf = fopen(list, "w");
    if (lf) {
        fprintf(lf, "%s/cat1.jpg 0\n%s/sample_image_1.jpg 1\n", cd, td);
        fclose(lf);
    }
    snprintf(text, sizeof text,
             "name: 'img' type: 'ImageData' top: 'data' top: 'label' image_data_param { source: '%s' batch_size: 2 }",
             list);
    CHECK_OK(build(&b, text, CAFFE__PHASE__TEST, 1));
    CHECK_EQ_INT(b.tops[0]->shape[2], 256);
    CHECK(fwd(&b) != 0);
    CHECK_MSG(has("new_height") && has("sizes.txt:2"), "message: %s", crema_errmsg());
    drop(&b);
    free(td);
    free(dir);
    free(cd);
}

/* Labels of n forwards of batch 1 (label = list index). */
static void read_order(const char *list, const char *cd, bool shuffle, uint64_t seed, int rank, int size, int n,
                       int *out)
{
    char text[2048];
    snprintf(text, sizeof text,
             "name: 'img' type: 'ImageData' top: 'data' top: 'label' image_data_param { source: '%s' "
             "root_folder: '%s/' batch_size: 1 new_height: 8 new_width: 8 shuffle: %s }",
             list, cd, shuffle ? "true" : "false");
    struct built b;
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, seed));
    if (b.l && size > 1)
        CHECK_OK(data_source_set_shard(b.l, rank, size));
    for (int i = 0; i < n; i++) {
        out[i] = -1;
        if (b.l && fwd(&b) == 0)
            out[i] = (int)tensor_data(b.tops[1])[0];
    }
    drop(&b);
}

static bool is_permutation(const int *v, int n)
{
    int seen[64] = { 0 };
    for (int i = 0; i < n; i++) {
        if (v[i] < 0 || v[i] >= n || seen[v[i]]++)
            return false;
    }
    return true;
}

static void image_data_shuffle_and_shard(void)
{
    char *cd = check_shared("corpus/caffeonspark/images_catdog");
    char *dir = check_tmpdir("imgshuf");
    char *list = indexed_list(dir, cd);
    int a[106], b[106], c[106];
    read_order(list, cd, false, 1, 0, 1, 106, a);
    int inorder = 0;
    for (int i = 0; i < 106; i++)
        inorder += a[i] == i % 53;
    CHECK_MSG(inorder == 106, "unshuffled: %d of 106 in list order (wrapping)", inorder);
    read_order(list, cd, true, 7, 0, 1, 106, a);
    read_order(list, cd, true, 7, 0, 1, 106, b);
    read_order(list, cd, true, 8, 0, 1, 106, c);
    CHECK_MSG(memcmp(a, b, sizeof a) == 0, "the same seed gave different orders");
    CHECK_MSG(memcmp(a, c, sizeof a) != 0, "different seeds gave the same order");
    CHECK_MSG(is_permutation(a, 53) && is_permutation(a + 53, 53), "a pass is not a permutation of the list");
    CHECK_MSG(memcmp(a, a + 53, 53 * sizeof(int)) != 0, "the second pass was not reshuffled");
    int moved = 0;
    for (int i = 0; i < 53; i++)
        moved += a[i] != i;
    CHECK_MSG(moved > 20, "shuffle moved only %d of 53", moved);
    /* three ranks with one seed: within each pass they read disjoint parts
     * of the same permutation, together all of it */
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        int pass1[2][53], cnt[2] = { 0, 0 };
        for (int r = 0; r < 3; r++) {
            int per = (53 - r + 2) / 3; /* positions r, r+3, ... < 53 */
            int got[40];
            read_order(list, cd, shuffle, 7, r, 3, 2 * per, got);
            for (int i = 0; i < 2 * per; i++) {
                int pass = i / per;
                pass1[pass][cnt[pass]++] = got[i];
                if (shuffle)
                    CHECK_MSG(got[i] == a[pass * 53 + r + 3 * (i % per)], "rank %d item %d: %d, expected %d", r, i,
                              got[i], a[pass * 53 + r + 3 * (i % per)]);
                else
                    CHECK_MSG(got[i] % 3 == r, "rank %d read list entry %d", r, got[i]);
            }
        }
        CHECK_EQ_INT(cnt[0], 53);
        CHECK_MSG(is_permutation(pass1[0], 53) && is_permutation(pass1[1], 53),
                  "shuffle %d: the ranks' first pass does not cover the list once", shuffle);
    }
    free(list);
    free(dir);
    free(cd);
}

static void image_data_paths_and_errors(void)
{
    char *cd = check_shared("corpus/caffeonspark/images_catdog");
    char *dir = check_tmpdir("imgerr");
    char cmd[2048], list[700], text[2048];
    /* a file name with spaces, and rand_skip */
    snprintf(cmd, sizeof cmd, "cp '%s/cat1.jpg' '%s/a cat.jpg' && cp '%s/dog1.jpg' '%s/a dog.jpg'", cd, dir, cd, dir);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(list, sizeof list, "%s/spaces.txt", dir);
    write_file(list, "a cat.jpg 5\n\na dog.jpg 6\n");
    snprintf(text, sizeof text,
             "name: 'img' type: 'ImageData' top: 'data' top: 'label' image_data_param { source: '%s' "
             "root_folder: '%s/' batch_size: 3 new_height: 10 new_width: 10 }", list, dir);
    struct built b;
    CHECK_OK(build(&b, text, CAFFE__PHASE__TEST, 1));
    CHECK_OK(fwd(&b));
    if (b.l)
        CHECK(tensor_data(b.tops[1])[0] == 5 && tensor_data(b.tops[1])[1] == 6 && tensor_data(b.tops[1])[2] == 5);
    drop(&b);
    /* a missing image on line 3: the forward that reaches it fails naming line and path */
    snprintf(list, sizeof list, "%s/missing.txt", dir);
    write_file(list, "a cat.jpg 0\n\nno/such_image.jpg 1\n");
    snprintf(text, sizeof text,
             "name: 'img' type: 'ImageData' top: 'data' top: 'label' image_data_param { source: '%s' "
             "root_folder: '%s/' batch_size: 2 new_height: 10 new_width: 10 }", list, dir);
    CHECK_OK(build(&b, text, CAFFE__PHASE__TEST, 1));
    CHECK(fwd(&b) != 0);
    CHECK_MSG(has("missing.txt:3") && has("no/such_image.jpg"), "message: %s", crema_errmsg());
    CHECK(fwd(&b) != 0); /* stays failed, no hang */
    drop(&b);
    /* missing first image: setup fails the same way */
    write_file(list, "no/such_image.jpg 1\n");
    CHECK(build(&b, text, CAFFE__PHASE__TEST, 1) != 0);
    CHECK_MSG(has("missing.txt:1") && has("no/such_image.jpg"), "message: %s", crema_errmsg());
    drop(&b);
    /* a corrupt JPEG: a JPEG start, then garbage */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/corrupt.jpg", dir);
    FILE *f = fopen(bad, "wb");
    unsigned char junk[600] = { 0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0 };
    for (int i = 11; i < 600; i++)
        junk[i] = (unsigned char)(i * 97 + 13);
    if (f) {
        fwrite(junk, 1, sizeof junk, f);
        fclose(f);
    }
    write_file(list, "a cat.jpg 0\ncorrupt.jpg 1\n");
    CHECK_OK(build(&b, text, CAFFE__PHASE__TEST, 1));
    CHECK(fwd(&b) != 0);
    CHECK_MSG(has("missing.txt:2") && has("corrupt.jpg") && has("JPEG"), "message: %s", crema_errmsg());
    drop(&b);
    /* an empty list, a line without a label, a missing list */
    write_file(list, "\n\n");
    CHECK(build(&b, text, CAFFE__PHASE__TEST, 1) != 0);
    CHECK_MSG(has("missing.txt") && has("empty"), "message: %s", crema_errmsg());
    drop(&b);
    write_file(list, "a cat.jpg 0\nnolabel.jpg\n");
    CHECK(build(&b, text, CAFFE__PHASE__TEST, 1) != 0);
    CHECK_MSG(has("missing.txt:2"), "message: %s", crema_errmsg());
    drop(&b);
    snprintf(text, sizeof text,
             "name: 'img' type: 'ImageData' top: 'data' top: 'label' image_data_param { source: '%s/nolist.txt' "
             "batch_size: 2 }", dir);
    CHECK(build(&b, text, CAFFE__PHASE__TEST, 1) != 0);
    CHECK_MSG(has("nolist.txt"), "message: %s", crema_errmsg());
    drop(&b);
    free(dir);
    free(cd);
}

/* ---- WindowData ---- */

/* The sample window file with its images' paths made relative, so that
 * root_folder finds them. */
static char *window_file(const char *dir, const char *extra)
{
    char *src = check_shared("corpus/formats/sample_mean_pr1136/src/caffe/test/test_data/sample_window.txt");
    char *out = malloc(700), cmd[2048];
    snprintf(out, 700, "%s/window.txt", dir);
    snprintf(cmd, sizeof cmd, "sed 's|^/.*/||' '%s' > '%s'", src, out);
    CHECK_EQ_INT(system(cmd), 0);
    if (extra) {
        FILE *f = fopen(out, "a");
        if (f) {
            fputs(extra, f);
            fclose(f);
        }
    }
    free(src);
    return out;
}

static void window_text(char *text, size_t n, const char *wf, const char *root, const char *more_window,
                        const char *transform)
{
    snprintf(text, n,
             "name: 'win' type: 'WindowData' top: 'data' top: 'label' transform_param { %s } "
             "window_data_param { source: '%s' root_folder: '%s/' batch_size: 8 %s }",
             transform, wf, root, more_window);
}

static void window_data_sample(void)
{
    char *dir = check_tmpdir("window");
    char *td = check_shared("corpus/formats/sample_mean_pr1136/src/caffe/test/test_data");
    char *wf = window_file(dir, NULL);
    char text[2048];
    /* fg_fraction 0.25 of 8: 6 background windows (label 0) then 2 foreground;
     * the only foreground window is class 2 on sample_image_1 */
    window_text(text, sizeof text, wf, td, "", "crop_size: 16");
    struct built b;
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 3));
    CHECK_OK(fwd(&b));
    struct tensor *d = b.tops[0];
    CHECK(d->shape[0] == 8 && d->shape[1] == 3 && d->shape[2] == 16 && d->shape[3] == 16);
    for (int i = 0; i < 8; i++)
        CHECK_MSG(tensor_data(b.tops[1])[i] == (i < 6 ? 0 : 2), "label %d is %g", i, tensor_data(b.tops[1])[i]);
    /* the foreground items are window (10,100)-(70,150) warped to 16x16 */
    char p1[700];
    snprintf(p1, sizeof p1, "%s/sample_image_1.jpg", td);
    struct image img, warped;
    CHECK_OK(image_read(p1, IMAGE_COLOR, &img));
    struct image roi = { 3, 51, 61, malloc(3 * 51 * 61) };
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 51; y++)
            memcpy(roi.data + (c * 51 + y) * 61, img.data + ((size_t)c * img.height + 100 + y) * img.width + 10, 61);
    CHECK_OK(image_resize(&roi, 16, 16, &warped));
    int diff = 0;
    for (int k = 0; k < 3 * 256; k++)
        diff += tensor_data(d)[6 * 768 + k] != (float)warped.data[k] || tensor_data(d)[7 * 768 + k] != (float)warped.data[k];
    CHECK_MSG(diff == 0, "%d values of the foreground items differ from the warped window", diff);
    image_free(&img);
    image_free(&roi);
    image_free(&warped);
    float first[8 * 768];
    memcpy(first, tensor_data(d), sizeof first);
    drop(&b);
    /* cache_images gives the same batches */
    window_text(text, sizeof text, wf, td, "cache_images: true", "crop_size: 16");
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 3));
    CHECK_OK(fwd(&b));
    CHECK(memcmp(first, tensor_data(b.tops[0]), sizeof first) == 0);
    drop(&b);
    /* mean_file (3x10x10, crop 8: offset 1) and window scale: out = (pixel - mean) * scale */
    char mean[800];
    snprintf(mean, sizeof mean, "crop_size: 8 mean_file: '%s/sample_mean.binaryproto'", td);
    float plain[8 * 192];
    window_text(text, sizeof text, wf, td, "scale: 0.5", "crop_size: 8");
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 5));
    CHECK_OK(fwd(&b));
    memcpy(plain, tensor_data(b.tops[0]), sizeof plain);
    drop(&b);
    window_text(text, sizeof text, wf, td, "scale: 0.5", mean);
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 5));
    CHECK_OK(fwd(&b));
    Caffe__TransformationParameter tp = CAFFE__TRANSFORMATION_PARAMETER__INIT;
    char mpath[700];
    snprintf(mpath, sizeof mpath, "%s/sample_mean.binaryproto", td);
    tp.mean_file = mpath;
    struct transformer t;
    CHECK_OK(transformer_init(&t, &tp, CAFFE__PHASE__TEST));
    CHECK(t.mean_c == 3 && t.mean_h == 10 && t.mean_w == 10);
    int bad = 0;
    for (int i = 0; b.l && t.mean && i < 8; i++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++) {
                    size_t k = (size_t)i * 192 + (size_t)(c * 64 + y * 8 + x);
                    float m = t.mean[(c * 10 + y + 1) * 10 + x + 1];
                    bad += fabsf((plain[k] - tensor_data(b.tops[0])[k]) - m * 0.5f) > 1e-4f;
                }
    CHECK_MSG(bad == 0, "%d values are not (pixel - mean[offset 1]) * scale", bad);
    transformer_free(&t);
    drop(&b);
    free(wf);
    free(td);
    free(dir);
}

/* context_pad and square mode: the part of the grown window outside the
 * image becomes zero padding, mirrored with the window. */
static void window_data_context(void)
{
    char *dir = check_tmpdir("window_ctx");
    char *td = check_shared("corpus/formats/sample_mean_pr1136/src/caffe/test/test_data");
    char wf[700], text[2048];
    snprintf(wf, sizeof wf, "%s/one.txt", dir);
    /* one background window at the left edge of image 2 (159 x 225) */
    write_file(wf, "# 0\nsample_image_2.jpg\n3\n159\n225\n1\n0 0.000 0 20 10 40\n");
    /* crop 20, pad 4: grown to x -4..15 (4 columns cut), y 13..48; warped 16 wide after 4 of padding */
    window_text(text, sizeof text, wf, td, "context_pad: 4 fg_fraction: 0", "crop_size: 20");
    struct built b;
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 1));
    CHECK_OK(fwd(&b));
    int zero_pad = 0, nonzero = 0;
    for (int c = 0; b.l && c < 3; c++)
        for (int y = 0; y < 20; y++)
            for (int x = 0; x < 20; x++) {
                float v = tensor_data(b.tops[0])[(c * 20 + y) * 20 + x];
                if (x < 4)
                    zero_pad += v == 0;
                else
                    nonzero += v != 0;
            }
    CHECK_MSG(zero_pad == 3 * 20 * 4, "%d of 240 padding values are zero", zero_pad);
    CHECK_MSG(nonzero > 3 * 20 * 16 * 9 / 10, "%d of 960 window values are non-zero", nonzero);
    float unmirrored[1200];
    memcpy(unmirrored, tensor_data(b.tops[0]), sizeof unmirrored);
    drop(&b);
    /* with mirror, some items are flipped with their padding on the right */
    window_text(text, sizeof text, wf, td, "context_pad: 4 fg_fraction: 0", "crop_size: 20 mirror: true");
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 1));
    CHECK_OK(fwd(&b));
    int flipped = 0, straight = 0;
    for (int i = 0; b.l && i < 8; i++) {
        const float *it = tensor_data(b.tops[0]) + i * 1200;
        if (memcmp(it, unmirrored, sizeof unmirrored) == 0) {
            straight++;
            continue;
        }
        int ok = 1;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 20; y++)
                for (int x = 0; x < 16; x++)
                    ok &= it[(c * 20 + y) * 20 + 15 - x] == unmirrored[(c * 20 + y) * 20 + 4 + x] &&
                          it[(c * 20 + y) * 20 + 16 + (x % 4)] == 0;
        flipped += ok;
    }
    CHECK_MSG(flipped > 0 && straight > 0 && flipped + straight == 8, "%d flipped, %d straight of 8", flipped,
              straight);
    drop(&b);
    /* square mode: the 11x21 window grows to a square before warping */
    window_text(text, sizeof text, wf, td, "crop_mode: 'square' fg_fraction: 0", "crop_size: 20");
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 1));
    CHECK_OK(fwd(&b));
    int left_zero = 0;
    for (int y = 0; b.l && y < 20; y++)
        left_zero += tensor_data(b.tops[0])[y * 20] == 0;
    CHECK_MSG(left_zero == 20, "square crop at the edge: %d of 20 left-column values are padding", left_zero);
    drop(&b);
    free(td);
    free(dir);
}

static void window_data_errors(void)
{
    char *dir = check_tmpdir("window_err");
    char *td = check_shared("corpus/formats/sample_mean_pr1136/src/caffe/test/test_data");
    char wf[700], text[2048];
    struct built b;
    snprintf(wf, sizeof wf, "%s/w.txt", dir);
    window_text(text, sizeof text, wf, td, "fg_fraction: 0", "crop_size: 8");
    /* a missing image: at the forward, or at setup with cache_images */
    write_file(wf, "# 0\nsample_image_2.jpg\n3\n159\n225\n1\n0 0.1 0 20 10 40\n# 1\nnot_there.jpg\n3\n10\n10\n1\n0 0.1 0 0 5 5\n");
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 1));
    int rc = 0;
    for (int i = 0; b.l && i < 4 && !rc; i++)
        rc = fwd(&b);
    CHECK(rc != 0);
    CHECK_MSG(has("w.txt:8") && has("not_there.jpg"), "message: %s", crema_errmsg());
    drop(&b);
    window_text(text, sizeof text, wf, td, "fg_fraction: 0 cache_images: true", "crop_size: 8");
    CHECK(build(&b, text, CAFFE__PHASE__TRAIN, 1) != 0);
    CHECK_MSG(has("w.txt:8") && has("not_there.jpg"), "message: %s", crema_errmsg());
    drop(&b);
    /* syntax: a bad number, a missing "#", a foreground window of class 0, an empty file */
    window_text(text, sizeof text, wf, td, "", "crop_size: 8");
    write_file(wf, "# 0\nsample_image_2.jpg\n3\n159\n225\n1\n0 0.1 0 20 ten 40\n");
    CHECK(build(&b, text, CAFFE__PHASE__TRAIN, 1) != 0);
    CHECK_MSG(has("w.txt:7") && has("ten"), "message: %s", crema_errmsg());
    drop(&b);
    write_file(wf, "0\nsample_image_2.jpg\n");
    CHECK(build(&b, text, CAFFE__PHASE__TRAIN, 1) != 0);
    CHECK_MSG(has("w.txt:1") && has("#"), "message: %s", crema_errmsg());
    drop(&b);
    write_file(wf, "# 0\nsample_image_2.jpg\n3\n159\n225\n1\n0 0.9 0 20 10 40\n");
    CHECK(build(&b, text, CAFFE__PHASE__TRAIN, 1) != 0);
    CHECK_MSG(has("w.txt:7") && has("class"), "message: %s", crema_errmsg());
    drop(&b);
    write_file(wf, "");
    CHECK(build(&b, text, CAFFE__PHASE__TRAIN, 1) != 0);
    CHECK_MSG(has("empty"), "message: %s", crema_errmsg());
    drop(&b);
    /* no crop_size; a window outside its image */
    window_text(text, sizeof text, wf, td, "fg_fraction: 0", "");
    write_file(wf, "# 0\nsample_image_2.jpg\n3\n159\n225\n1\n0 0.1 200 20 300 40\n");
    CHECK(build(&b, text, CAFFE__PHASE__TRAIN, 1) != 0);
    CHECK_MSG(has("crop_size"), "message: %s", crema_errmsg());
    drop(&b);
    window_text(text, sizeof text, wf, td, "fg_fraction: 0", "crop_size: 8");
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 1));
    CHECK(fwd(&b) != 0);
    CHECK_MSG(has("w.txt:7") && has("outside"), "message: %s", crema_errmsg());
    drop(&b);
    free(td);
    free(dir);
}

/* ---- CaffeOnSpark MemoryData sources ---- */

static bool make_mnist(const char *dir, const char *set, char *out, size_t n)
{
    const char *fm = "/usr/share/datasets/fashion-mnist";
    snprintf(out, n, "%s/%s_lmdb", dir, set);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' convert-mnist %s/%s-images-idx3-ubyte.gz %s/%s-labels-idx1-ubyte.gz '%s' >/dev/null",
             check_crema_bin(), fm, set, fm, set, out);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "convert-mnist of %s failed (Fashion-MNIST from Debian's dataset-fashion-mnist)", set);
    return rc == 0;
}

/* lenet_memory_train_test.prototxt with its sources replaced. */
static Caffe__NetParameter *cos_lenet(const char *train, const char *test, const char *train_class)
{
    char *path = check_shared("corpus/caffeonspark/data/lenet_memory_train_test.prototxt");
    Caffe__NetParameter *np = NULL;
    CHECK_OK(proto_read_text(path, &caffe__net_parameter__descriptor, (ProtobufCMessage **)&np));
    free(path);
    int seen = 0;
    for (size_t i = 0; np && i < np->n_layer; i++) {
        Caffe__LayerParameter *lp = np->layer[i];
        if (!lp->memory_data_param)
            continue;
        bool is_train = lp->n_include && lp->include[0]->phase == CAFFE__PHASE__TRAIN;
        free(lp->memory_data_param->source);
        lp->memory_data_param->source = strdup(is_train ? train : test);
        if (is_train && train_class) {
            free(lp->source_class);
            lp->source_class = strdup(train_class);
        }
        seen++;
    }
    CHECK_EQ_INT(seen, 2);
    return np;
}

static struct net *open_net(const Caffe__NetParameter *np, Caffe__Phase phase)
{
    Caffe__NetState st = CAFFE__NET_STATE__INIT;
    st.has_phase = true;
    st.phase = phase;
    struct net *net = NULL;
    if (np)
        CHECK_OK(net_build(np, &st, 1, &net));
    return net;
}

static void cos_lmdb_lenet(void)
{
    char *dir = check_tmpdir("cos_lmdb");
    char train[600], test[600], uri[700];
    if (!make_mnist(dir, "train", train, sizeof train) || !make_mnist(dir, "t10k", test, sizeof test)) {
        free(dir);
        return;
    }
    snprintf(uri, sizeof uri, "file:%s/", train); /* CaffeOnSpark's file: URI, with a trailing slash */
    Caffe__NetParameter *np = cos_lenet(uri, test, NULL);
    /* the first 64 training records, straight from the LMDB */
    float want_label[128], want_pix[128];
    struct db *db = NULL;
    struct db_cursor *cur = NULL;
    struct datum dt = { 0 };
    CHECK_OK(db_open_read(train, DB_LMDB, &db));
    if (db)
        CHECK_OK(db_cursor_open(db, &cur));
    for (int i = 0; cur && i < 128; i++) {
        size_t vl;
        const uint8_t *v = db_cursor_value(cur, &vl);
        CHECK_OK(datum_decode(v, vl, IMAGE_NATIVE, "k", &dt));
        want_label[i] = (float)dt.label;
        want_pix[i] = (float)dt.u8[14 * 28 + 14] * 0.00390625f;
        CHECK_OK(db_cursor_next(cur));
    }
    datum_free(&dt);
    db_cursor_close(cur);
    db_close(db);

    struct net *net = open_net(np, CAFFE__PHASE__TRAIN);
    for (int it = 0; net && it < 3; it++) {
        float loss = 0;
        CHECK_OK(net_forward(net, &loss));
        CHECK_OK(net_backward(net));
        CHECK_MSG(isfinite(loss) && loss > 0.5f && loss < 10, "iteration %d: loss %g", it, loss);
        struct tensor *d = net_blob(net, "data"), *l = net_blob(net, "label");
        CHECK(d && d->num_axes == 4 && d->shape[0] == 64 && d->shape[1] == 1 && d->shape[2] == 28);
        CHECK(l && l->count == 64);
        if (it < 2 && d && l) {
            int bad = 0;
            for (int i = 0; i < 64; i++)
                bad += tensor_data(l)[i] != want_label[it * 64 + i] ||
                       tensor_data(d)[(size_t)i * 784 + 14 * 28 + 14] != want_pix[it * 64 + i];
            CHECK_MSG(bad == 0, "batch %d: %d items differ from the LMDB's records", it, bad);
        }
    }
    /* the layer reads its source: feeding it is an error; sharding is too late now */
    struct layer *ml = net ? net_layer_by_name(net, "data") : NULL;
    if (ml) {
        float x[784] = { 0 }, y[64] = { 0 };
        CHECK(memory_data_reset(ml, x, y, 64) != 0);
        CHECK_MSG(has("source_class"), "message: %s", crema_errmsg());
        CHECK(data_source_set_shard(ml, 0, 2) != 0);
    }
    net_free(net);
    /* rank 1 of 2 reads records 1, 3, 5, ... */
    net = open_net(np, CAFFE__PHASE__TRAIN);
    ml = net ? net_layer_by_name(net, "data") : NULL;
    if (ml) {
        CHECK_OK(data_source_set_shard(ml, 1, 2));
        CHECK_OK(net_forward(net, NULL));
        int bad = 0;
        for (int i = 0; i < 64; i++)
            bad += tensor_data(net_blob(net, "label"))[i] != want_label[2 * i + 1];
        CHECK_MSG(bad == 0, "shard 1 of 2: %d labels are not those of the odd records", bad);
    }
    net_free(net);
    /* TEST: batch 100 with accuracy */
    net = open_net(np, CAFFE__PHASE__TEST);
    for (int it = 0; net && it < 2; it++) {
        CHECK_OK(net_forward(net, NULL));
        struct tensor *acc = net_blob(net, "accuracy");
        CHECK(acc && tensor_data(acc)[0] >= 0 && tensor_data(acc)[0] <= 1);
        CHECK_EQ_INT(net_blob(net, "data")->shape[0], 100);
    }
    net_free(net);
    caffe__net_parameter__free_unpacked(np, NULL);

    /* memory_data_param's channels/height/width must be what the records give */
    np = cos_lenet(train, test, NULL);
    if (np)
        np->layer[0]->memory_data_param->height = 32;
    Caffe__NetState st = CAFFE__NET_STATE__INIT;
    st.has_phase = true;
    st.phase = CAFFE__PHASE__TRAIN;
    struct net *bad_net = NULL;
    if (np) {
        CHECK(net_build(np, &st, 1, &bad_net) != 0);
        CHECK_MSG(has("height 32") && has("after transform_param"), "message: %s", crema_errmsg());
        caffe__net_parameter__free_unpacked(np, NULL);
    }
    /* an LMDB with no records, a remote URI */
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty_lmdb", dir);
    struct db *e = NULL;
    CHECK_OK(db_create(empty, DB_LMDB, &e));
    CHECK_OK(db_close(e));
    np = cos_lenet(empty, test, NULL);
    if (np) {
        CHECK(net_build(np, &st, 1, &bad_net) != 0);
        CHECK_MSG(has("empty") && has("empty_lmdb"), "message: %s", crema_errmsg());
        caffe__net_parameter__free_unpacked(np, NULL);
    }
    np = cos_lenet("hdfs:///projects/mnist_train_lmdb", test, NULL);
    if (np) {
        CHECK(net_build(np, &st, 1, &bad_net) != 0);
        CHECK_MSG(has("hdfs:///projects/mnist_train_lmdb") && has("crema.spark"), "message: %s", crema_errmsg());
        caffe__net_parameter__free_unpacked(np, NULL);
    }
    free(dir);
}

/* DataFrame sources are Spark's: the net builds (crema.spark feeds it), and
 * a forward without data says to use crema.spark. Through the public API,
 * as the command line runs it. */
static void cos_spark_sources(void)
{
    const char *classes[3] = { "com.yahoo.ml.caffe.ImageDataFrame", "com.yahoo.ml.caffe.SeqImageDataSource",
                               "com.yahoo.ml.caffe.DataFrameSource" };
    char *dir = check_tmpdir("cos_spark");
    for (int k = 0; k < 3; k++) {
        Caffe__NetParameter *np = cos_lenet("/data/images.parquet", "/data/test.parquet", classes[k]);
        char path[600];
        snprintf(path, sizeof path, "%s/net%d.prototxt", dir, k);
        CHECK_OK(proto_write_text(path, &np->base));
        caffe__net_parameter__free_unpacked(np, NULL);
        crema_net *net = NULL;
        CHECK_OK(crema_net_open(path, NULL, CREMA_TRAIN, &net));
        if (!net)
            continue;
        CHECK(crema_net_forward(net, NULL) != CREMA_OK);
        CHECK_MSG(has("crema.spark") && has(classes[k]) && has("layer data"), "message: %s", crema_errmsg());
        /* fed as crema.spark feeds it, it runs */
        float *x = calloc(64 * 784, sizeof(float)), y[64] = { 0 };
        CHECK_OK(crema_net_set_memory_data(net, "data", x, y, 64));
        CHECK_OK(crema_net_forward(net, NULL));
        free(x);
        crema_net_free(net);
    }
    free(dir);
}

/* ---- resume positions ---- */

/* n forwards of the layer `text` (seed, shard rank of size), each batch's
 * data and labels kept in order. */
struct batches {
    float *data, *label;
    size_t per; /* floats of data per batch */
};

static void build_sharded(struct built *b, const char *text, uint64_t seed, int rank, int size)
{
    CHECK_OK(build(b, text, CAFFE__PHASE__TRAIN, seed));
    if (b->l && size > 1)
        CHECK_OK(data_source_set_shard(b->l, rank, size));
}

/* Runs n forwards of b and checks each against want's batches from `from` on. */
static int check_forwards(struct built *b, const struct batches *want, int from, int n, const char *what)
{
    int bad = 0;
    for (int i = from; b->l && i < n; i++) {
        int rc = fwd(b);
        CHECK_MSG(rc == 0, "%s: forward %d: %s", what, i, crema_errmsg());
        if (rc)
            return -1;
        size_t nb = (size_t)b->tops[1]->count;
        bool same = (size_t)b->tops[0]->count == want->per &&
                    memcmp(tensor_data(b->tops[0]), want->data + (size_t)i * want->per, want->per * sizeof(float)) == 0 &&
                    memcmp(tensor_data(b->tops[1]), want->label + (size_t)i * nb, nb * sizeof(float)) == 0;
        if (!same && bad++ == 0)
            CHECK_MSG(false, "%s: batch %d differs from the straight run's (first label %g, expected %g)", what, i,
                      tensor_data(b->tops[1])[0], want->label[(size_t)i * nb]);
    }
    return bad;
}

/* A layer resumed from its position after k forwards — in a fresh layer
 * with a different seed, and in the same layer after it read on — gives the
 * straight run's batches k, k+1, ... exactly, whatever the prefetch thread
 * had read ahead. The position goes through the wire format. */
static void resume_case(const char *text, int rank, int size, int n, const int *ks, int n_k, const char *what)
{
    struct built b;
    build_sharded(&b, text, 7, rank, size);
    struct batches want = { 0 };
    for (int i = 0; b.l && i < n; i++) {
        CHECK_OK(fwd(&b));
        size_t per = (size_t)b.tops[0]->count, nb = (size_t)b.tops[1]->count;
        if (!want.data) {
            want.per = per;
            want.data = malloc((size_t)n * per * sizeof(float));
            want.label = malloc((size_t)n * nb * sizeof(float));
        }
        memcpy(want.data + (size_t)i * per, tensor_data(b.tops[0]), per * sizeof(float));
        memcpy(want.label + (size_t)i * nb, tensor_data(b.tops[1]), nb * sizeof(float));
    }
    drop(&b);
    for (int c = 0; want.data && c < n_k; c++) {
        int k = ks[c];
        char tag[160];
        snprintf(tag, sizeof tag, "%s, resumed after %d", what, k);
        struct built a, f;
        build_sharded(&a, text, 7, rank, size);
        for (int i = 0; a.l && i < k; i++)
            CHECK_OK(fwd(&a));
        /* let the thread fill its slots, so the position is not simply the reader's */
        nanosleep(&(struct timespec){ .tv_nsec = 30 * 1000 * 1000 }, NULL);
        Caffe__CremaDataPosition got = CAFFE__CREMA_DATA_POSITION__INIT;
        CHECK(a.l && data_source_has_position(a.l));
        if (!a.l || !data_source_has_position(a.l)) {
            drop(&a);
            break;
        }
        CHECK_OK(data_source_get_position(a.l, &got));
        size_t len = caffe__crema_data_position__get_packed_size(&got);
        uint8_t *buf = malloc(len ? len : 1);
        caffe__crema_data_position__pack(&got, buf);
        free(got.rng_state);
        free(got.shuffle_rng_state);
        Caffe__CremaDataPosition *pos = caffe__crema_data_position__unpack(NULL, len, buf);
        free(buf);
        CHECK(pos != NULL);
        if (!pos) {
            drop(&a);
            break;
        }
        build_sharded(&f, text, 99, rank, size); /* another seed: the position must carry every generator */
        CHECK_OK(data_source_set_position(f.l, pos));
        CHECK_EQ_INT(check_forwards(&f, &want, k, n, tag), 0);
        drop(&f);
        /* the same layer, its thread reading ahead, sent back */
        for (int i = 0; i < 2; i++)
            CHECK_OK(fwd(&a));
        CHECK_OK(data_source_set_position(a.l, pos));
        snprintf(tag, sizeof tag, "%s, sent back to %d", what, k);
        CHECK_EQ_INT(check_forwards(&a, &want, k, n, tag), 0);
        drop(&a);
        caffe__crema_data_position__free_unpacked(pos, NULL);
    }
    free(want.data);
    free(want.label);
}

static void image_data_resume(void)
{
    char *cd = check_shared("corpus/caffeonspark/images_catdog");
    char *dir = check_tmpdir("imgresume");
    char *list = indexed_list(dir, cd);
    char text[2048];
    const int ks[] = { 0, 6, 15 };
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        snprintf(text, sizeof text,
                 "name: 'img' type: 'ImageData' top: 'data' top: 'label' "
                 "transform_param { crop_size: 6 mirror: true scale: 0.00390625 } "
                 "image_data_param { source: '%s' root_folder: '%s/' batch_size: 4 new_height: 8 new_width: 8 "
                 "shuffle: %s }",
                 list, cd, shuffle ? "true" : "false");
        /* 20 batches of 4: a pass and a half over 53 images; rank 1 of 3, over four passes */
        resume_case(text, 0, 1, 20, ks, 3, shuffle ? "ImageData shuffled" : "ImageData");
        resume_case(text, 1, 3, 20, ks, 3, shuffle ? "ImageData shuffled, rank 1 of 3" : "ImageData, rank 1 of 3");
    }
    /* errors: past the list, and a shuffled layer given no shuffle state */
    struct built b;
    CHECK_OK(build(&b, text, CAFFE__PHASE__TRAIN, 7));
    Caffe__CremaDataPosition pos = CAFFE__CREMA_DATA_POSITION__INIT;
    pos.has_record = true;
    pos.record = 53;
    CHECK(b.l && data_source_set_position(b.l, &pos) != 0);
    CHECK_MSG(has("record 53") && has("53 images"), "message: %s", crema_errmsg());
    pos.record = 3;
    CHECK(b.l && data_source_set_position(b.l, &pos) != 0);
    CHECK_MSG(has("shuffle_rng_state"), "message: %s", crema_errmsg());
    uint64_t words[3] = { 1, 2, 3 };
    pos.n_shuffle_rng_state = 3;
    pos.shuffle_rng_state = words;
    CHECK(b.l && data_source_set_position(b.l, &pos) != 0);
    CHECK_MSG(has("shuffle_rng_state has 3 values"), "message: %s", crema_errmsg());
    CHECK_OK(fwd(&b)); /* a refused position leaves the layer as it was */
    drop(&b);
    free(list);
    free(dir);
    free(cd);
}

/* MemoryData reading CaffeOnSpark's LMDB source: its position is its inner
 * Data layer's (prefetch, crops, mirrors). */
static void cos_lmdb_resume(void)
{
    char *lmdb = check_shared("golden/data/lmdb_test_crop/lmdb");
    char text[2048];
    snprintf(text, sizeof text,
             "name: 'cos' type: 'MemoryData' top: 'data' top: 'label' source_class: 'com.yahoo.ml.caffe.LMDB' "
             "transform_param { crop_size: 20 mirror: true scale: 0.00390625 } "
             "memory_data_param { source: 'file:%s' batch_size: 7 channels: 1 height: 20 width: 20 }",
             lmdb);
    const int ks[] = { 0, 5, 12 };
    resume_case(text, 0, 1, 16, ks, 3, "MemoryData LMDB source");
    resume_case(text, 2, 3, 16, ks, 3, "MemoryData LMDB source, rank 2 of 3");
    free(lmdb);
}

/* ---- what every data layer shares ---- */

/* One batch_size limit, checked the same way by the six data layers,
 * before any source is opened (the sources named here do not exist). */
static void batch_size_limit(void)
{
    static const struct {
        const char *field, *text; /* text has one %u for the batch size */
    } kinds[] = {
        { "data_param.batch_size",
          "name: 'd' type: 'Data' top: 'data' top: 'label' data_param { source: '/nonexistent' batch_size: %u }" },
        { "image_data_param.batch_size", "name: 'd' type: 'ImageData' top: 'data' top: 'label' "
                                         "image_data_param { source: '/nonexistent' batch_size: %u }" },
        { "hdf5_data_param.batch_size", "name: 'd' type: 'HDF5Data' top: 'data' top: 'label' "
                                        "hdf5_data_param { source: '/nonexistent' batch_size: %u }" },
        { "window_data_param.batch_size", "name: 'd' type: 'WindowData' top: 'data' top: 'label' "
                                          "window_data_param { source: '/nonexistent' batch_size: %u }" },
        { "memory_data_param.batch_size", "name: 'd' type: 'MemoryData' top: 'data' top: 'label' "
                                          "memory_data_param { batch_size: %u channels: 1 height: 1 width: 1 }" },
        { "cos_data_param.batch_size", "name: 'd' type: 'CoSData' top: 'data' top: 'label' "
                                       "cos_data_param { batch_size: %u top { name: 'data' type: FLOAT channels: 1 } "
                                       "top { name: 'label' type: INT channels: 1 } }" },
    };
    const unsigned bad[] = { 0, DATA_SOURCE_MAX_BATCH + 1u, 4294967295u };
    char limit[32];
    snprintf(limit, sizeof limit, "%d", DATA_SOURCE_MAX_BATCH);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            char text[512], want[96];
            snprintf(text, sizeof text, kinds[k].text, bad[b]);
            snprintf(want, sizeof want, "%s is %u", kinds[k].field, bad[b]);
            struct built x;
            CHECK_MSG(build(&x, text, CAFFE__PHASE__TRAIN, 1) != 0, "%s %u was accepted", kinds[k].field, bad[b]);
            CHECK_MSG(has(want) && has(limit) && has("layer d"), "message for %s %u: %s", kinds[k].field, bad[b],
                      crema_errmsg());
            drop(&x);
        }
    }
    /* CoSData needs batch_size given */
    struct built x;
    CHECK(build(&x, "name: 'd' type: 'CoSData' top: 'data' top: 'label' cos_data_param { "
                    "top { name: 'data' type: FLOAT channels: 1 } top { name: 'label' type: INT channels: 1 } }",
                CAFFE__PHASE__TRAIN, 1) != 0);
    CHECK_MSG(has("cos_data_param.batch_size is 0"), "message: %s", crema_errmsg());
    drop(&x);
    /* the limit itself is a batch size (MemoryData: 1 float an item) */
    char text[256];
    snprintf(text, sizeof text, "name: 'd' type: 'MemoryData' top: 'data' top: 'label' "
             "memory_data_param { batch_size: %d channels: 1 height: 1 width: 1 }", DATA_SOURCE_MAX_BATCH);
    CHECK_OK(build(&x, text, CAFFE__PHASE__TRAIN, 1));
    CHECK(x.l && x.tops[0]->shape[0] == DATA_SOURCE_MAX_BATCH);
    drop(&x);
}

/* Sharding and positions are the data layers' own table: which kind offers
 * what, and the refusals for the others. */
static void data_source_table(void)
{
    static const struct {
        const char *type;
        bool shard, position, follows;
    } want[] = {
        { "Data", true, true, true },         { "ImageData", true, true, false },
        { "HDF5Data", false, true, false },   { "WindowData", false, false, false },
        { "MemoryData", true, true, false },  { "CoSData", false, false, false },
        { "InnerProduct", false, false, false }, { "Input", false, false, false },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct layer l = { .kind = layer_kind_find(want[i].type), .name = "x" };
        CHECK_MSG(l.kind != NULL, "no kind %s", want[i].type);
        if (!l.kind)
            continue;
        CHECK_MSG(data_source_shardable(&l) == want[i].shard, "%s: shardable %d", want[i].type,
                  data_source_shardable(&l));
        CHECK_MSG(data_source_has_position(&l) == want[i].position, "%s: has a position %d", want[i].type,
                  data_source_has_position(&l));
        CHECK_MSG(data_source_follows_rank0(&l) == want[i].follows, "%s: follows rank 0 %d", want[i].type,
                  data_source_follows_rank0(&l));
        bool is_source = i < 6;
        CHECK_MSG((l.kind->source != NULL) == is_source, "%s: source table %p", want[i].type,
                  (const void *)l.kind->source);
        if (!want[i].shard) {
            CHECK(data_source_set_shard(&l, 0, 2) != 0);
            CHECK_MSG(has("cannot be sharded") && has(want[i].type), "message: %s", crema_errmsg());
        }
        if (!want[i].position) {
            Caffe__CremaDataPosition pos = CAFFE__CREMA_DATA_POSITION__INIT;
            CHECK(data_source_get_position(&l, &pos) != 0);
            CHECK(data_source_set_position(&l, &pos) != 0);
            CHECK_MSG(has("has no reading position"), "message: %s", crema_errmsg());
        }
    }
}

CHECK_MAIN(CASE(image_data_catdog), CASE(image_data_shuffle_and_shard), CASE(image_data_paths_and_errors),
           CASE(window_data_sample), CASE(window_data_context), CASE(window_data_errors), CASE(cos_lmdb_lenet),
           CASE(cos_spark_sources), CASE(image_data_resume), CASE(cos_lmdb_resume), CASE(batch_size_limit),
           CASE(data_source_table))
