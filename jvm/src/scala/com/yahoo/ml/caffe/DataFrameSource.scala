// CaffeOnSpark's DataFrameSource: the DataFrame that feeds a CoSData layer.
package com.yahoo.ml.caffe

import java.io.File
import java.net.URI

import caffe.Caffe._
import com.yahoo.ml.caffe.crema.FeedSpec
import org.apache.spark.SparkContext
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.slf4j.{Logger, LoggerFactory}

/**
 * DataFrameSource reads cos_data_param.source (parquet): one column per
 * top of the CoSData layer, named as the top, and an optional id column. Samples are (id, values).
 */
class DataFrameSource(conf: Config, layerId: Int, isTrain: Boolean)
  extends DataSource[(String, Array[Any]), Unit](conf, layerId, isTrain, ("", Array[Any]())) {
  @transient protected var log: Logger = null
  @transient protected var cosDataParam: CoSDataParameter = null
  private var numTops: Int = -1
  private var topNames: Array[String] = null
  private var topTypes: Array[Int] = null

  override def init(): Boolean = {
    log = LoggerFactory.getLogger(this.getClass)
    if (!super.init()) return fail("Initialization failed in DataSource.init()")
    if (!layerParameter.hasCosDataParam())
      return fail("Layer " + layerId + " (" + layerParameter.getName + ") failed to specify cos_data_param")
    cosDataParam = layerParameter.getCosDataParam()
    numTops = cosDataParam.getTopCount()
    topNames = (0 until numTops).map(i => cosDataParam.getTop(i).getName).toArray
    topTypes = (0 until numTops).map(i => cosDataParam.getTop(i).getType.getNumber).toArray
    batchSize_ = cosDataParam.getBatchSize()
    if (batchSize_ < 1) return fail("Invalid batch size:" + batchSize_)
    log.info("Batch size:" + batchSize_)
    sourceFilePath = cosDataParam.getSource()
    if (sourceFilePath == null || sourceFilePath.isEmpty)
      return fail("Source must be specified for layer " + layerId + " (" + layerParameter.getName + ")")
    if (sourceFilePath.startsWith("file:")) {
      val path = new URI(sourceFilePath).toString().substring("file:".length)
      if (!path.startsWith("/")) sourceFilePath = "file:" + new File(path).getAbsolutePath()
    }
    true
  }

  def makeRDD(sc: SparkContext): RDD[(String, Array[Any])] = {
    val spark = SparkSession.builder().config(sc.getConf).getOrCreate()
    // crema's schema has no cos_data_param.dataframe_format (yet): parquet, CaffeOnSpark's default
    val format = "parquet"
    val df: DataFrame = spark.read.format(format).load(sourceFilePath)
    val columns = df.columns
    val missing = topNames.filterNot(columns.contains(_))
    if (missing.nonEmpty)
      throw new IllegalArgumentException("layer " + layerParameter.getName + ": the DataFrame has no column for " +
        "top(s) " + missing.mkString(", ") + " (columns: " + columns.mkString(", ") + ")")
    val idAt = columns.indexOf("id")
    val at = topNames.map(columns.indexOf(_))
    df.rdd.map { row =>
      val id = if (idAt < 0 || row.isNullAt(idAt)) "" else String.valueOf(row.get(idAt))
      (id, at.map(i => row.get(i): Any))
    }
  }

  override def useCoSDataLayer(): Boolean = true

  override def getNumTops(): Int = numTops

  override def getTopDataType(index: Int): CoSDataParameter.DataType = cosDataParam.getTop(index).getType

  override def getTopTransformParam(index: Int): TransformationParameter = {
    val t = cosDataParam.getTop(index)
    if (t.hasTransformParam) t.getTransformParam else null
  }

  private[caffe] def feedSpec(): FeedSpec = FeedSpec.cos(layerParameter.getName, batchSize_, topNames, topTypes)
}
