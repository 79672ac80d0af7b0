/* The Data layer's extra interface: sharding for data-parallel ranks. */
#ifndef CREMA_LAYERS_DATA_LAYER_H
#define CREMA_LAYERS_DATA_LAYER_H

#include "layers/layer.h"

/* Makes the Data layer read only its rank's share of the database: within
 * each pass over the records, rank r of n keeps record i (0-based position in
 * key order) when i % n == r, so the n ranks read disjoint sets that together
 * cover the database. Must be called before the first forward (the prefetch
 * thread starts then). The default is rank 0 of 1: every record. */
int data_layer_set_shard(struct layer *l, int rank, int size);

#endif
