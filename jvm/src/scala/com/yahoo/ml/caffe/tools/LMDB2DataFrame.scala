// CaffeOnSpark's LMDB2DataFrame: an LMDB of Datums as an ImageDataFrame
// DataFrame (id, label, channels, height, width, encoded, data).
package com.yahoo.ml.caffe.tools

import com.yahoo.ml.caffe.Config
import com.yahoo.ml.caffe.crema.LmdbRDD
import org.apache.spark.sql.types.{BinaryType, BooleanType, IntegerType, StringType, StructField, StructType}
import org.apache.spark.sql.{DataFrame, Row, SparkSession}
import org.apache.spark.{SparkConf, SparkContext}
import org.slf4j.{Logger, LoggerFactory}

object LMDB2DataFrame {
  val log: Logger = LoggerFactory.getLogger(this.getClass)
  val schema = new StructType(Array(StructField("id", StringType, true),
    StructField("label", StringType, false),
    StructField("channels", IntegerType, true),
    StructField("height", IntegerType, true),
    StructField("width", IntegerType, true),
    StructField("encoded", BooleanType, true),
    StructField("data", BinaryType, false)))

  /** -imageRoot <LMDB directory or Hadoop URI> -output <DataFrame path> [-outputFormat json|parquet]
   * [-lmdb_partitions N]: raw planar pixels (crema's reader decodes encoded Datums). */
  def main(args: Array[String]): Unit = {
    val sc = new SparkContext(new SparkConf())
    try {
      val conf = new Config(sc, args)
      if (conf.imageRoot == null || conf.imageRoot.length == 0 || conf.outputPath.length == 0)
        throw new IllegalArgumentException("-imageRoot <LMDB directory> and -output <DataFrameFile> must be defined")
      val rdd = new LmdbRDD(sc, conf.imageRoot, math.max(1, conf.lmdb_partitions)).map {
        case (id, label, channels, height, width, encoded, data) => Row(id, label, channels, height, width, encoded, data)
      }
      val df: DataFrame = SparkSession.builder().config(sc.getConf).getOrCreate().createDataFrame(rdd, schema)
      log.info("Saving DF at " + conf.outputPath)
      df.write.format(conf.outputFormat).save(conf.outputPath)
    } finally sc.stop()
  }
}
