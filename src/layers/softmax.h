/* Caffe's softmax arithmetic over the middle axis of an outer x channels x
 * inner array, shared by the Softmax layer and the losses that contain one. */
#ifndef CREMA_LAYERS_SOFTMAX_H
#define CREMA_LAYERS_SOFTMAX_H

/* out = softmax(in) along channels, on crema's threads (cpu/threads.h).
 * in and out may be the same array. */
void softmax_forward_cpu(const float *in, float *out, int outer, int channels, int inner);
/* bottom_diff = top_data * (top_diff - <top_diff, top_data>) along channels;
 * top_diff and bottom_diff may be the same array. */
void softmax_backward_cpu(const float *top_data, const float *top_diff, float *bottom_diff, int outer,
                          int channels, int inner);

#endif
