/* CaffeOnSpark's data sources: a MemoryData layer with source_class and
 * memory_data_param.source. crema reads "com.yahoo.ml.caffe.LMDB" itself,
 * as a Data layer over the LMDB; the DataFrame and sequence-file classes are
 * Spark's to feed (crema.spark), through the MemoryData API. */
#ifndef CREMA_DATA_COS_SOURCE_H
#define CREMA_DATA_COS_SOURCE_H

#include "caffe.pb-c.h"

#define COS_LMDB_CLASS "com.yahoo.ml.caffe.LMDB"

enum cos_source_kind {
    COS_SOURCE_NONE,  /* no source_class: the layer is fed through the API */
    COS_SOURCE_LMDB,  /* crema reads the LMDB */
    COS_SOURCE_SPARK, /* ImageDataFrame, SeqImageDataSource, DataFrameSource, ...: fed by crema.spark */
};

/* The Data layer that reads an LMDB source in the MemoryData layer's place.
 * Its strings point into the MemoryData layer's parameters, which must
 * outlive it. */
struct cos_lmdb {
    Caffe__LayerParameter layer;
    Caffe__DataParameter data;
    Caffe__TransformationParameter transform;
};

/* Classifies lp->source_class; for COS_SOURCE_LMDB also fills lmdb. A
 * missing source, or a source that is not a local path or file: URI, is an
 * error naming the field. */
int cos_source_resolve(const Caffe__LayerParameter *lp, enum cos_source_kind *kind, struct cos_lmdb *lmdb);

/* The error for a Spark-fed source used outside crema.spark. */
int cos_source_spark_only(const Caffe__LayerParameter *lp);

#endif
