/* Batch prefetching shared by the data layers: a thread fills batches of
 * transformed items into a ring of slots ahead of the forward pass. */
#ifndef CREMA_DATA_PREFETCH_H
#define CREMA_DATA_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "caffe.pb-c.h"
#include "core/tensor.h"

/* One batch: batch_size items of c x h x w floats, and batch_size labels. */
struct prefetch_batch {
    float *data, *label;
    int c, h, w;
    size_t cap; /* floats allocated in data */
    /* With a device (prefetch_set_device): the host buffers are pinned for
     * pin (prefetch_reserve keeps them so as they grow), and the batch is
     * copied to dev_data/dev_label before the slot counts as full. */
    const struct backend *pin;
    float *dev_data, *dev_label;
    size_t dev_cap;
    void *consumed; /* a mark after the consumer's last copy out of dev_* */
};

/* Fills one batch; runs on the prefetch thread, so it may only touch state
 * the layer's forward does not. Returns a status; its message is kept and
 * every later prefetch_forward returns it. */
typedef int (*prefetch_fill_fn)(void *ctx, struct prefetch_batch *b);

struct prefetch;

/* n_slots batches are filled ahead (at least 1). The thread starts at the
 * first prefetch_forward, so the fill state may be changed (sharding, a
 * position) until then. */
int prefetch_new(int batch_size, int n_slots, prefetch_fill_fn fill, void *ctx, struct prefetch **out);
/* Stops and joins the thread, frees the slots. NULL is allowed. */
void prefetch_free(struct prefetch *pf);
bool prefetch_started(const struct prefetch *pf);

/* How many batches to fill ahead: data_param.prefetch (default 4, at most
 * 64), which Caffe's prefetching layers all read, whatever their kind. */
int prefetch_slots(const Caffe__LayerParameter *lp);

/* Reading positions (a resumed run must get the batch its next forward would
 * have got): the thread runs ahead, so the fill state is not where the
 * consumer stands. With tracking, the ring remembers, for each batch, the
 * size bytes at state (the fill function's position, which it advances) as
 * they were when the batch began: copied on the prefetch thread between
 * batches, or on the caller's thread while no thread runs. Call before the
 * first forward. */
int prefetch_track(struct prefetch *pf, const void *state, size_t size);
/* Copies into out (size bytes) the state the batch the next
 * prefetch_forward returns began from. */
void prefetch_position(struct prefetch *pf, void *out);
/* Stops and joins the thread and drops what it read ahead (and a failure):
 * the layer may then move its fill state (seek), and the next
 * prefetch_forward starts a thread from there. */
void prefetch_stop(struct prefetch *pf);

/* For fill functions: gives b room for its batch of c x h x w items. */
int prefetch_reserve(struct prefetch_batch *b, int batch_size, int c, int h, int w);

/* Makes the thread also copy each batch to `be` (a backend with its own
 * memory and the prefetch entries), on a queue of its own while the
 * previous batch computes, so that prefetch_forward_on only copies within
 * the device. Before the thread starts (the first forward); later calls
 * leave it as it is. */
int prefetch_set_device(struct prefetch *pf, const struct backend *be);

/* prefetch_forward for a consumer on `be`: the tensors get their copy on
 * `be` (straight from the device staging when the thread uploads to it). */
int prefetch_forward_on(struct prefetch *pf, struct tensor *data, struct tensor *label, int label_axes,
                        const struct backend *be);

/* Waits for the next filled batch and copies it into data (reshaped to
 * batch x c x h x w) and, when label is not NULL, label (reshaped to
 * label_axes == 1 ? [batch] : [batch, 1, 1, 1]). */
int prefetch_forward(struct prefetch *pf, struct tensor *data, struct tensor *label, int label_axes);

#endif
