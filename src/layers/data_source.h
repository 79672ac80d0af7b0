/* What the layers that read a source share (Data, ImageData, HDF5Data,
 * WindowData, MemoryData, CoSData): one batch_size limit, sharding among
 * ranks, reading positions for resume, and the prefetch thread's life. */
#ifndef CREMA_LAYERS_DATA_SOURCE_H
#define CREMA_LAYERS_DATA_SOURCE_H

#include "data/prefetch.h"
#include "layers/layer.h"

/* The largest batch_size a data layer takes, whatever its kind. */
#define DATA_SOURCE_MAX_BATCH (1 << 24)

/* Where a reader stands. The prefetch ring keeps one per batch, so that a
 * position names the batch the next forward returns, not the thread's. */
struct data_cursor {
    size_t record;  /* the next record (row, entry) within the pass */
    uint64_t epoch; /* passes completed */
    struct rng rng; /* the reader's generator: crops, mirrors, HDF5 shuffles, windows */
    /* ImageData with shuffle: the shuffle generator as it was before this
     * pass's order was drawn, which is enough to draw it again. */
    struct rng pass_rng;
};

/* What a layer's crema_data_position holds besides the record. */
enum {
    DATA_SAVES_EPOCH = 1,   /* epoch */
    DATA_SAVES_RNG = 2,     /* rng_state, from at.rng */
    DATA_SAVES_PASS_RNG = 4 /* shuffle_rng_state, from at.pass_rng; required when read back */
};

/* The part of a data layer's state the helpers below work on. A data
 * layer's l->priv begins with it (each kind asserts so), so that sharding
 * and positions reach it from the layer alone. */
struct data_source {
    int batch_size;
    int rank, size;        /* this rank's share: see data_source_mine */
    unsigned saves;        /* DATA_SAVES_* */
    struct data_cursor at; /* the reader's; the prefetch thread's once it runs */
    struct prefetch *pf;   /* NULL: the layer reads on the forward's thread */
};

/* A data layer kind's entries (layer_kind.source); NULL ones are absent. */
struct data_source_ops {
    /* Keeps only rank's share of the source. NULL: every rank reads all
     * of it (HDF5Data, WindowData) or is fed its own (CoSData). */
    int (*set_shard)(struct layer *l, int rank, int size);
    /* get_position fills *pos (an initialized message; arrays malloc'd,
     * freed with the message) with the position of the batch the NEXT
     * forward produces; set_position goes back to such a position, and
     * leaves the layer as it was when it refuses one. NULL: the layer has
     * no position (WindowData samples at random; CoSData is fed anew). */
    int (*get_position)(struct layer *l, Caffe__CremaDataPosition *pos);
    int (*set_position)(struct layer *l, const Caffe__CremaDataPosition *pos);
    /* A distributed resume moves every rank to rank 0's position shifted
     * into the rank's share (the solver's shard_record), instead of each
     * rank keeping its own. */
    bool follows_rank0;
};

/* ---- for the net, the solver and the API ---- */

/* Whether l reads a source with a position (a resumed run restores it). */
bool data_source_has_position(const struct layer *l);
int data_source_get_position(struct layer *l, Caffe__CremaDataPosition *pos);
int data_source_set_position(struct layer *l, const Caffe__CremaDataPosition *pos);
/* Whether l can be sharded, and whether a distributed resume shifts its
 * position (data_source_ops.follows_rank0). */
bool data_source_shardable(const struct layer *l);
bool data_source_follows_rank0(const struct layer *l);
/* Makes l read only rank's share of its source: within each pass over the
 * records, rank r of n keeps record i (0-based, in reading order) when
 * i % n == r, so that the n ranks read disjoint sets that together cover
 * the source. Before the first forward (the prefetch thread starts then);
 * the default is rank 0 of 1, every record. */
int data_source_set_shard(struct layer *l, int rank, int size);

/* ---- for the data layer kinds ---- */

/* Checks a batch_size (field names it in the message: 1 to
 * DATA_SOURCE_MAX_BATCH), and makes s rank 0 of 1 with a position that
 * saves what `saves` says. */
int data_source_init(struct data_source *s, const char *field, uint32_t batch_size, unsigned saves);
/* Seeds s->at.rng from the net's generator (a fixed seed without one). */
void data_source_seed(struct data_source *s, const struct layer *l);
/* The sharding rule: whether record i of a pass is this rank's. */
bool data_source_mine(const struct data_source *s, size_t record);
/* set_shard for readers that skip to their records with data_source_mine:
 * refused once the prefetch thread has started. */
int data_source_keep_share(struct layer *l, int rank, int size);
/* Checks that n items fed through the API (what: "items", "samples") make
 * whole batches. */
int data_source_check_feed(const struct layer *l, const char *what, int n);

/* The prefetch thread's life: made at setup (data_param.prefetch batches
 * ahead, fill(ctx) on the thread, s->at tracked per batch), started by the
 * first forward, stopped by a seek, closed before the state it reads goes. */
int data_source_prefetch(struct data_source *s, const struct layer *l, prefetch_fill_fn fill, void *ctx);
/* The next batch into data (batch x c x h x w) and label ([batch]). */
int data_source_forward(struct data_source *s, struct tensor *data, struct tensor *label);
/* The same on backend be: on a device the prefetch thread copies each batch
 * there while the previous one computes (prefetch_set_device), and the
 * tensors get it with a copy within the device. A layer's forward_dev. */
int data_source_forward_on(struct data_source *s, struct tensor *data, struct tensor *label,
                           const struct backend *be);
/* runs_on for the layers that read through the prefetch thread. */
bool data_source_runs_on(const struct backend *be);
/* Stops the thread and drops what it read ahead: the layer may move s->at. */
void data_source_stop(struct data_source *s);
void data_source_close(struct data_source *s);

/* get_position for layers whose position is s->at alone: the cursor of the
 * batch the next forward returns, written as s->saves says. */
int data_source_cursor_position(struct layer *l, Caffe__CremaDataPosition *pos);
/* The cursor pos names: what pos holds over where the next forward's batch
 * begins (absent generators stay as they are; a generator of the wrong length, or a missing
 * shuffle_rng_state that DATA_SAVES_PASS_RNG needs, is an error naming the
 * layer). Moves nothing. */
int data_source_read_position(const struct layer *l, struct data_source *s, const Caffe__CremaDataPosition *pos,
                              struct data_cursor *at);

#endif
