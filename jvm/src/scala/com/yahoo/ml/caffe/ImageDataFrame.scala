// CaffeOnSpark's ImageDataFrame: images from a Spark DataFrame.
package com.yahoo.ml.caffe

import org.apache.spark.SparkContext
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.{DataFrame, Row, SparkSession}
import org.apache.spark.storage.StorageLevel

/**
 * ImageDataFrame reads a DataFrame with 2 required columns (label, data: binary or string) and 5
 * optional ones (id: string, channels, height, width: int, encoded: boolean), configured by the
 * MemoryData layer: source, dataframe_format (parquet by default), dataframe_column_select
 * (selectExpr statements, e.g. "sampleId as id"), image_encoded (the default of encoded).
 */
class ImageDataFrame(conf: Config, layerId: Int, isTrain: Boolean)
  extends ImageDataSource(conf, layerId, isTrain) {

  def makeRDD(sc: SparkContext): RDD[(String, String, Int, Int, Int, Boolean, Array[Byte])] = {
    val spark = SparkSession.builder().config(sc.getConf).getOrCreate()
    var reader = spark.read
    if (memdatalayer_param.hasDataframeFormat()) reader = reader.format(memdatalayer_param.getDataframeFormat())
    var df: DataFrame = reader.load(sourceFilePath)
    if (memdatalayer_param.getDataframeColumnSelectCount() > 0) {
      import scala.collection.JavaConverters._
      df = df.selectExpr(memdatalayer_param.getDataframeColumnSelectList().asScala: _*)
    }
    val columns = df.columns
    for (need <- Seq("label", "data") if !columns.contains(need))
      throw new IllegalArgumentException("layer " + layerParameter.getName + " (ImageDataFrame " + sourceFilePath +
        "): the DataFrame has no " + need + " column (columns: " + columns.mkString(", ") + ")")
    val idAt = columns.indexOf("id")
    val chAt = columns.indexOf("channels")
    val hAt = columns.indexOf("height")
    val wAt = columns.indexOf("width")
    val encAt = columns.indexOf("encoded")
    val labelAt = columns.indexOf("label")
    val dataAt = columns.indexOf("data")
    val encodedDefault = memdatalayer_param.getImageEncoded()
    def int(row: Row, i: Int): Int = if (i < 0 || row.isNullAt(i)) 0 else row.get(i).asInstanceOf[Number].intValue
    df.rdd.map { row =>
      val id = if (idAt < 0 || row.isNullAt(idAt)) "" else String.valueOf(row.get(idAt))
      val label = if (row.isNullAt(labelAt)) null else String.valueOf(row.get(labelAt))
      val encoded = if (encAt < 0 || row.isNullAt(encAt)) encodedDefault else row.getBoolean(encAt)
      val data: Array[Byte] = row.get(dataAt) match {
        case s: String => s.getBytes("UTF-8")
        case a: Array[Byte] => a
        case _ => null
      }
      (id, label, int(row, chAt), int(row, hAt), int(row, wAt), encoded, data)
    }.persist(StorageLevel.DISK_ONLY)
  }
}
