/* The vision family's CUDA files share this: conv.cu fills the convolution
 * and bias entries of the table vision.cu builds. Plugin-private. */
#ifndef CREMA_CUDA_VISION_CUH
#define CREMA_CUDA_VISION_CUH

#include "cuda/common.cuh"

/* Sets conv_plan_create .. conv_backward_filter, bias_forward and
 * bias_backward of t. */
void cuda_vision_conv_entries(struct vision_ops *t);

#endif
