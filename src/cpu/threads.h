/* crema's own threads: a persistent pool that runs the CPU loops BLAS does
 * not parallelise (im2col/col2im, pooling, LRN, element-wise layers,
 * softmax) over contiguous ranges of independent outputs.
 *
 * Global state: this module owns one process-wide pool (worker threads, a
 * mutex and two condition variables, the current job). It is created on the
 * first parallel call, sized from CREMA_NUM_THREADS (else the online CPUs,
 * else 1), and joined by cpu_threads_shutdown, which an atexit handler also
 * calls; a forked child starts with no pool and makes its own.
 *
 * CREMA_NUM_THREADS and OPENBLAS_NUM_THREADS are independent knobs. crema
 * never calls BLAS from inside a pool task, so the two sets of threads take
 * turns (BLAS runs between parallel regions) instead of oversubscribing. */
#ifndef CREMA_CPU_THREADS_H
#define CREMA_CPU_THREADS_H

#include <stddef.h>

/* Work on [begin, end) of a parallel loop; returns 0 or a crema status
 * (setting its message with err_set, which is per thread). */
typedef int (*cpu_range_fn)(void *ctx, size_t begin, size_t end);

/* Splits [0, n) into contiguous ranges of at least min_chunk indices (0
 * reads as 1) and runs fn on each, the calling thread included, returning
 * when all are done. Runs fn(ctx, 0, n) inline when the pool has one
 * thread, when n < 2 * min_chunk, when called from inside a pool task
 * (nested), or when another thread's region holds the pool. Every index is
 * covered exactly once, so fn must only write outputs its range owns for
 * the result not to depend on the thread count. Returns 0, or the status
 * (and message) of the failing range with the lowest indices; every range
 * runs even when one fails. */
int cpu_parallel_for(size_t n, size_t min_chunk, cpu_range_fn fn, void *ctx);

/* The min_chunk for a loop whose every index costs about `work` simple
 * steps (a float copied, added, compared): enough indices per range that
 * it pays for handing it to another thread. */
#define CPU_GRAIN_WORK 32768
static inline size_t cpu_grain(size_t work)
{
    return work >= CPU_GRAIN_WORK ? 1 : CPU_GRAIN_WORK / (work ? work : 1);
}

/* Threads a parallel region uses, the calling thread included (reads the
 * configuration on first use; starts no threads). */
int cpu_num_threads(void);

/* Replaces the pool with one of n threads (1 .. CPU_MAX_THREADS); 0 goes
 * back to the CREMA_NUM_THREADS / CPU count default. For tests and
 * embedders; refused inside a pool task. */
int cpu_set_num_threads(int n);
#define CPU_MAX_THREADS 256

/* Scratch of at least n floats owned by the calling thread, kept and reused
 * by its next call (it grows when asked for more; freed when the thread
 * ends), so that a loop run every iteration allocates nothing in the
 * steady state. Valid until the thread's next call; not zeroed. NULL with
 * err_set when it cannot grow. */
float *cpu_scratch(size_t n);

/* Joins the pool's threads and frees it; the next parallel call makes a new
 * one. Idempotent; registered with atexit on first use. */
void cpu_threads_shutdown(void);

#endif
