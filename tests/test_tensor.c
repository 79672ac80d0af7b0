/* Tensors: reshape keeps buffers that are big enough, sharing, axes. */
#include "check.h"
#include "core/tensor.h"

static void reshape_and_axes(void)
{
    struct tensor *t = tensor_new();
    int s[4] = { 2, 3, 4, 5 };
    CHECK_OK(tensor_reshape(t, 4, s));
    CHECK_EQ_INT(t->count, 120);
    CHECK_EQ_INT(tensor_dim(t, -1), 5);
    CHECK_EQ_INT(tensor_canonical_axis(t, -4), 0);
    CHECK_EQ_INT(tensor_canonical_axis(t, 4), -1);
    CHECK_EQ_INT(tensor_count_range(t, 1, 3), 12);
    CHECK_EQ_INT(tensor_legacy_dim(t, 3), 5);
    float *d = tensor_data(t);
    CHECK(d != NULL);
    CHECK(d[119] == 0.f);
    d[0] = 7.f;
    int small[2] = { 10, 2 };
    CHECK_OK(tensor_reshape(t, 2, small));
    CHECK(tensor_data(t) == d); /* smaller: same buffer, as Caffe */
    CHECK(tensor_data(t)[0] == 7.f);
    CHECK_EQ_INT(tensor_legacy_dim(t, 3), 1);
    tensor_free(t);
}

static void sharing(void)
{
    struct tensor *a = tensor_new(), *b = tensor_new();
    CHECK_OK(tensor_reshape4(a, 1, 2, 3, 4));
    CHECK_OK(tensor_reshape4(b, 24, 1, 1, 1));
    CHECK_OK(tensor_share_data(b, a));
    tensor_data(a)[5] = 3.f;
    CHECK(tensor_data(b)[5] == 3.f);
    tensor_free(a); /* b keeps the buffer alive */
    CHECK(tensor_data(b)[5] == 3.f);
    struct tensor *c = tensor_new();
    CHECK_OK(tensor_reshape4(c, 2, 1, 1, 1));
    CHECK(tensor_share_data(c, b) != 0);
    tensor_free(b);
    tensor_free(c);
}

static void zero_axes(void)
{
    struct tensor *t = tensor_new();
    CHECK_OK(tensor_reshape(t, 0, NULL));
    CHECK_EQ_INT(t->count, 1);
    CHECK(tensor_data(t) != NULL);
    int neg[1] = { -1 };
    CHECK(tensor_reshape(t, 1, neg) != 0);
    tensor_free(t);
}

CHECK_MAIN(CASE(reshape_and_axes), CASE(sharing), CASE(zero_axes))
