/* A sum over the threads of one block in a fixed tree, so the same inputs
 * and launch shape give the same bits on every run (no atomics). Shared by
 * the families' reduction kernels; plugin-private. */
#ifndef CREMA_CUDA_BLOCK_SUM_CUH
#define CREMA_CUDA_BLOCK_SUM_CUH

/* The block size of every kernel that calls block_sum (a power of two). */
#define BLOCK_SUM_THREADS 256

/* Every thread of the block must call it (it synchronises the block); each
 * gets the total of the v's. `shared` holds BLOCK_SUM_THREADS floats and may
 * be reused by the next call. */
__device__ inline float block_sum(float v, float *shared)
{
    const unsigned t = threadIdx.x;
    __syncthreads(); /* every thread has read the last call's total */
    shared[t] = v;
    __syncthreads();
    for (unsigned s = BLOCK_SUM_THREADS / 2; s > 0; s >>= 1) {
        if (t < s)
            shared[t] = __fadd_rn(shared[t], shared[t + s]);
        __syncthreads();
    }
    return shared[0];
}

/* Blocks for `rows` independent reductions, one block each, capped (the
 * kernels loop over rows). */
static inline unsigned block_sum_grid(size_t rows)
{
    const size_t cap = 65535u * 8u;
    return rows < 1 ? 1u : rows > cap ? (unsigned)cap : (unsigned)rows;
}

#endif
