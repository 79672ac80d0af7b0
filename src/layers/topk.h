/* Caffe's top-k order (std::partial_sort with std::greater on (value, index)
 * pairs), shared by ArgMax and Accuracy. */
#ifndef CREMA_LAYERS_TOPK_H
#define CREMA_LAYERS_TOPK_H

#include <stddef.h>

/* Moves the k first pairs to the front of val/idx, in order: larger value
 * first, equal values by larger index first. */
void argmax_select_top_k(float *val, int *idx, size_t n, int k);

#endif
