// CaffeOnSpark's LMDB source.
package com.yahoo.ml.caffe

import com.yahoo.ml.caffe.crema.{FeedSpec, LmdbRDD}
import org.apache.spark.SparkContext
import org.apache.spark.rdd.RDD
import org.apache.spark.storage.StorageLevel

/**
 * LMDB is the built-in source for LMDB databases of Caffe Datums (memory_data_param.source: a local
 * path, a file: URI, or any Hadoop URI, whose files are copied to each executor's local disk first).
 * Training and features read each rank's shard (records rank, rank + n, ...) with crema's reader and
 * the layer's transform_param; makeRDD gives the records as tuples (lmdb_partitions partitions).
 */
class LMDB(conf: Config, layerId: Int, isTrain: Boolean) extends ImageDataSource(conf, layerId, isTrain) {

  override def makeRDD(sc: SparkContext): RDD[(String, String, Int, Int, Int, Boolean, Array[Byte])] =
    new LmdbRDD(sc, sourceFilePath, math.max(1, conf.lmdb_partitions)).persist(StorageLevel.DISK_ONLY)

  override private[caffe] def feedSpec(): FeedSpec = {
    val p = layerParameter.getMemoryDataParam
    FeedSpec.lmdb(layerParameter.getName, batchSize_, sourceFilePath,
      if (layerParameter.hasTransformParam) layerParameter.getTransformParam.toByteArray else null,
      p.getChannels, p.getHeight, p.getWidth)
  }
}
