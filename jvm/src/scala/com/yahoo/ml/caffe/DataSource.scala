// CaffeOnSpark's DataSource: the base of the data sources, and getSource,
// which picks a source by the data layer's source_class.
package com.yahoo.ml.caffe

import java.lang.reflect.InvocationTargetException

import caffe.Caffe._
import com.yahoo.ml.caffe.crema.FeedSpec
import org.apache.spark.SparkContext
import org.apache.spark.rdd.RDD
import org.slf4j.{Logger, LoggerFactory}

/**
 * Base class for data sources. Each subclass must have a constructor (conf: Config, layerId: Int,
 * isTrain: Boolean); DataSource.getSource calls it for the class named by the layer's source_class.
 *
 * @param conf CaffeOnSpark configuration
 * @param layerId the layer index in the net prototxt
 * @param isTrain whether the source feeds the TRAIN net
 * @param STOP_MARK the sample that marks the end of a source
 * @tparam T1 class of the samples of the RDD
 * @tparam T2 class of a batch: crema builds batches in C memory, so no JVM object holds one
 */
abstract class DataSource[T1, T2](val conf: Config, val layerId: Int, val isTrain: Boolean, val STOP_MARK: T1)
  extends Serializable {
  @transient private[caffe] var solverParameter: SolverParameter = null
  @transient private[caffe] var layerParameter: LayerParameter = null
  @transient private[caffe] var transformationParameter: TransformationParameter = null
  @transient protected var sourceFilePath: String = null
  @transient protected var batchSize_ : Int = -1
  @transient protected var solverMode: Int = -1

  /** The RDD of this source's samples. */
  def makeRDD(sc: SparkContext): RDD[T1]

  /** Reads the solver and the layer's parameters; true when they are usable. */
  def init(): Boolean = {
    solverParameter = conf.solverParameter
    if (solverParameter == null) return false
    solverMode = solverParameter.getSolverMode().getNumber()
    layerParameter = conf.netParam.getLayer(layerId)
    transformationParameter = layerParameter.getTransformParam()
    true
  }

  def setBatchSize(size: Int): Unit = batchSize_ = size

  def batchSize(): Int = batchSize_

  def useCoSDataLayer(): Boolean = false

  def getNumTops(): Int = 0

  def getTopDataType(index: Int): CoSDataParameter.DataType = null

  def getTopTransformParam(index: Int): TransformationParameter = null

  /** The layer's name in the net. */
  private[caffe] def layerName: String = conf.netParam.getLayer(layerId).getName

  /** What each rank feeds into its net's data layer (built on the driver). */
  private[caffe] def feedSpec(): FeedSpec

  /** Why init() failed, for the exception getSource throws. */
  @transient private[caffe] var initError: String = null

  protected def fail(msg: String): Boolean = {
    initError = msg
    LoggerFactory.getLogger(this.getClass).error(msg)
    false
  }
}

object DataSource extends Serializable {
  @transient private lazy val log: Logger = LoggerFactory.getLogger(this.getClass)

  /** The source of the net's TRAIN (isTraining) or TEST data layer, an instance of the class its
   * source_class names (a CoSData layer without one gets DataFrameSource). */
  def getSource(conf: Config, isTraining: Boolean): DataSource[_, _] = {
    val phase = if (isTraining) "TRAIN" else "TEST"
    val layerId = if (isTraining) conf.train_data_layer_id else conf.test_data_layer_id
    if (conf.netParam == null)
      throw new IllegalArgumentException("DataSource.getSource: no solver prototxt (give -conf)")
    if (layerId < 0)
      throw new IllegalArgumentException("the net of " + conf.protoFile + " has no layer with include { phase: " +
        phase + " } (CaffeOnSpark's data layers name their phase)")
    log.info("Source data layer:" + layerId)
    val lp = conf.netParam.getLayer(layerId)
    val className =
      if (lp.hasSourceClass) lp.getSourceClass
      else if (lp.getType == "CoSData") classOf[DataFrameSource].getName
      else throw new IllegalArgumentException("layer " + lp.getName + " (" + lp.getType + ", phase " + phase +
        "): source_class must be defined for an input data layer")
    val clz = try Class.forName(className) catch {
      case e: ClassNotFoundException =>
        throw new ClassNotFoundException("layer " + lp.getName + ": source_class " + className +
          ": no such class on the classpath", e)
    }
    if (!classOf[DataSource[_, _]].isAssignableFrom(clz))
      throw new IllegalArgumentException("layer " + lp.getName + ": source_class " + className +
        " is not a com.yahoo.ml.caffe.DataSource")
    val ctor = try clz.getConstructor(classOf[Config], java.lang.Integer.TYPE, java.lang.Boolean.TYPE) catch {
      case _: NoSuchMethodException =>
        throw new IllegalArgumentException(className +
          " doesn't have a constructor of the required signature (conf: Config, layerId: Int, isTrain: Boolean)")
    }
    val source = try {
      ctor.newInstance(conf, Integer.valueOf(layerId), java.lang.Boolean.valueOf(isTraining)).asInstanceOf[DataSource[_, _]]
    } catch {
      case e: InvocationTargetException => throw e.getCause
    }
    if (!source.init())
      throw new IllegalArgumentException("layer " + lp.getName + " (" + className + "): " +
        Option(source.initError).getOrElse("the source failed to initialize"))
    source
  }
}
