/* Mapping CaffeOnSpark's source classes onto crema's readers. */
#include "data/cos_source.h"
#include "util/err.h"
#include "util/io.h"

#include <stdbool.h>
#include <string.h>

int cos_source_resolve(const Caffe__LayerParameter *lp, enum cos_source_kind *kind, struct cos_lmdb *lmdb)
{
    const char *cls = lp->source_class;
    *kind = COS_SOURCE_NONE;
    if (!cls || !*cls)
        return CREMA_OK;
    if (strcmp(cls, COS_LMDB_CLASS) != 0) {
        *kind = COS_SOURCE_SPARK;
        return CREMA_OK;
    }
    static const Caffe__MemoryDataParameter mdef = CAFFE__MEMORY_DATA_PARAMETER__INIT;
    static const Caffe__TransformationParameter tdef = CAFFE__TRANSFORMATION_PARAMETER__INIT;
    const Caffe__MemoryDataParameter *mp = lp->memory_data_param ? lp->memory_data_param : &mdef;
    if (!mp->source || !*mp->source)
        return err_set(CREMA_ERR_INVALID, "source_class %s needs memory_data_param.source (the LMDB folder)", cls);
    const char *path = io_strip_file_uri(mp->source);
    if (path == mp->source && strstr(mp->source, "://"))
        return err_set(CREMA_ERR_UNSUPPORTED,
                       "memory_data_param.source %s: crema reads a local LMDB (a path or a file: URI); copy it "
                       "to local disk, or run the net through crema.spark",
                       mp->source);
    *kind = COS_SOURCE_LMDB;
    Caffe__LayerParameter li = CAFFE__LAYER_PARAMETER__INIT;
    Caffe__DataParameter di = CAFFE__DATA_PARAMETER__INIT;
    lmdb->layer = li;
    lmdb->data = di;
    lmdb->transform = lp->transform_param ? *lp->transform_param : tdef;
    lmdb->layer.name = lp->name;
    lmdb->layer.type = (char *)"Data";
    lmdb->layer.data_param = &lmdb->data;
    lmdb->layer.transform_param = &lmdb->transform;
    lmdb->data.source = (char *)path;
    lmdb->data.has_batch_size = true;
    lmdb->data.batch_size = mp->batch_size;
    lmdb->data.has_backend = true;
    lmdb->data.backend = CAFFE__DATA_PARAMETER__DB__LMDB;
    /* CaffeOnSpark decodes encoded records by the channel count asked for. */
    if (!lmdb->transform.force_color && !lmdb->transform.force_gray) {
        lmdb->transform.force_gray = mp->channels == 1;
        lmdb->transform.force_color = mp->channels == 3;
    }
    return CREMA_OK;
}

int cos_source_spark_only(const Caffe__LayerParameter *lp)
{
    return err_set(CREMA_ERR_UNSUPPORTED,
                   "layer %s: source_class %s is a Spark data source: run this net through crema.spark (the "
                   "Python/Spark front end), which feeds the layer; from the command line crema reads only "
                   "source_class " COS_LMDB_CLASS,
                   lp->name ? lp->name : "?", lp->source_class);
}
