// CaffeOnSpark's ImageDataSource: the sources of images for a MemoryData
// layer, whose samples are (id, label, channels, height, width, encoded,
// data) tuples.
package com.yahoo.ml.caffe

import java.io.File
import java.net.URI

import caffe.Caffe._
import com.yahoo.ml.caffe.crema.FeedSpec
import org.slf4j.{Logger, LoggerFactory}

/**
 * Abstract image data source: its subclasses make an RDD of (id, label, channels, height, width,
 * encoded, data). Raw data are planar (channels x height x width bytes); a tuple with height or width
 * 0 takes the layer's memory_data_param dimensions.
 */
abstract class ImageDataSource(conf: Config, layerId: Int, isTrain: Boolean)
  extends DataSource[(String, String, Int, Int, Int, Boolean, Array[Byte]), Unit](conf,
    layerId, isTrain, (null, null, 0, 0, 0, false, null)) {
  @transient protected var log: Logger = null
  @transient protected var memdatalayer_param: MemoryDataParameter = null
  @transient private var numChannels = 0
  @transient private var height = 0
  @transient private var width = 0

  override def init(): Boolean = {
    log = LoggerFactory.getLogger(this.getClass)
    if (!super.init()) return fail("Initialization failed in DataSource.init()")
    if (!layerParameter.hasMemoryDataParam())
      return fail("Layer " + layerId + " (" + layerParameter.getName + ") failed to specify memory_data_param")
    memdatalayer_param = layerParameter.getMemoryDataParam()
    numChannels = memdatalayer_param.getChannels()
    height = memdatalayer_param.getHeight()
    width = memdatalayer_param.getWidth()
    batchSize_ = memdatalayer_param.getBatchSize()
    if (batchSize_ < 1) return fail("Invalid batch size:" + batchSize_)
    log.info("Batch size:" + batchSize_)
    sourceFilePath = memdatalayer_param.getSource()
    if (sourceFilePath == null || sourceFilePath.isEmpty)
      return fail("Source must be specified for layer " + layerId + " (" + layerParameter.getName + ")")
    if (sourceFilePath.startsWith("file:")) {
      val path = new URI(sourceFilePath).toString().substring("file:".length)
      if (!path.startsWith("/")) sourceFilePath = "file:" + new File(path).getAbsolutePath()
    }
    true
  }

  private[caffe] def feedSpec(): FeedSpec =
    FeedSpec.image(layerParameter.getName, batchSize_, numChannels, height, width,
      memdatalayer_param.getImageEncoded, conf.resize)
}
