// CaffeOnSpark's Config: its command-line flags, getters and setters, and
// the solver and net prototxts, read on the driver with crema's text reader.
package com.yahoo.ml.caffe

import caffe.Caffe._
import com.yahoo.ml.caffe.crema.Proto
import org.apache.commons.cli.{BasicParser, CommandLine, Options}
import org.apache.spark.SparkContext
import org.slf4j.{Logger, LoggerFactory}

/**
 * CaffeOnSpark configuration: CaffeOnSpark's flags (-conf, -train, -test, -features, -label, -model,
 * -output, -outputFormat, -devices, -persistent, -snapshot, -weights, -connection, -resize,
 * -clusterSize, -lmdb_partitions and the conversion tools' -imageRoot, -labelFile, ...) as properties.
 */
class Config(sc: SparkContext) extends Serializable {
  @transient private var _log: Logger = LoggerFactory.getLogger(this.getClass)
  private var _protoFile = ""
  private var _isTraining = false
  private var _isTest = false
  private var _isFeature = false
  private var _label = "label"
  private var _modelPath = ""
  private var _outputPath = ""
  private var _devices = 0
  private var _isRddPersistent = false
  private var _snapshotStateFile = ""
  private var _snapshotModelFile = ""
  private var _resize = false
  private var _connection = 0
  private var _clusterSize = 0
  private var _train_data_layer_id = -1
  private var _test_data_layer_id = -1
  private var _transform_thread_per_device = 1
  private var _features = Array[String]()
  private var _outputFormat = "json"
  private var _imageRoot = ""
  private var _labelFile = ""
  private var _lmdb_partitions = 0
  private var _imageCaptionDFDir = ""
  private var _vocabDir = ""
  private var _embeddingDFDir = ""
  private var _captionFile = ""
  private var _captionLength = 20
  private var _vocabSize = -1
  // the prototxts as text, so that executors and copies of this object need no file
  private var _solverText: String = null
  private var _netText: String = null
  @transient private var _solverParameter: SolverParameter = null
  @transient private var _netParam: NetParameter = null

  def log: Logger = {
    if (_log == null) _log = LoggerFactory.getLogger(this.getClass)
    _log
  }

  /** File location of the solver prototxt. */
  def protoFile: String = _protoFile

  /** Sets the solver prototxt and reads it and its net; finds the TRAIN and TEST data layers. */
  def protoFile_=(value: String): Unit = {
    _protoFile = value
    if (value == null || value.length() == 0) {
      log.warn("solver protofile isn't given")
    } else {
      val (sp, solverText, np, netText) = Proto.readSolverAndNet(value)
      _solverParameter = sp
      _solverText = solverText
      _netParam = np
      _netText = netText
      // CaffeOnSpark's rule: the first layer with an include rule for TRAIN,
      // the first with one for TEST
      _train_data_layer_id = -1
      _test_data_layer_id = -1
      var layerId = 0
      while ((_train_data_layer_id < 0 || _test_data_layer_id < 0) && layerId < np.getLayerCount) {
        val lp = np.getLayer(layerId)
        for (i <- 0 until lp.getIncludeCount) {
          if (lp.getInclude(i).getPhase == Phase.TRAIN && _train_data_layer_id < 0) _train_data_layer_id = layerId
          if (lp.getInclude(i).getPhase == Phase.TEST && _test_data_layer_id < 0) _test_data_layer_id = layerId
        }
        layerId += 1
      }
    }
  }

  /** true if we perform model training */
  def isTraining: Boolean = _isTraining
  def isTraining_=(value: Boolean): Unit = _isTraining = value

  /** true if we perform model test */
  def isTest: Boolean = _isTest
  def isTest_=(value: Boolean): Unit = {
    // test and features exclude each other: the one set last wins
    if (value && isFeature) {
      log.warn("both -test and -features are found, we will do test only (as it is latest), disabling feature mode.")
      _isFeature = false
    }
    _isTest = value
  }

  /** true if we perform feature extraction */
  def isFeature: Boolean = _isFeature
  def isFeature_=(value: Boolean): Unit = {
    if (value && isTest) {
      log.warn("both -test and -features are found, we will do features only (as it is latest), disabling test mode.")
      _isTest = false
    }
    _isFeature = value
  }

  /** Label blob name (added to the features). */
  def label: String = _label
  def label_=(value: String): Unit = {
    if (features != null && value != null && !value.isEmpty() && !features.contains(value)) {
      _features = features :+ value
    }
    _label = value
  }

  /** Path of the model file (a Hadoop URI: file:, hdfs:, webhdfs:, ...). */
  def modelPath: String = _modelPath
  def modelPath_=(value: String): Unit = {
    if (value == null || value.length() == 0) log.warn("modelPath is not specified")
    _modelPath = value
  }

  /** Path of the output (features, test results). */
  def outputPath: String = _outputPath
  def outputPath_=(value: String): Unit = _outputPath = value

  /** # of devices per executor (crema: one rank per Spark task; see README). */
  def devices: Int = _devices
  def devices_=(value: Int): Unit = _devices = value

  /** True if the training RDD should be persisted. */
  def isRddPersistent: Boolean = _isRddPersistent
  def isRddPersistent_=(value: Boolean): Unit = _isRddPersistent = value

  /** Path of a solver state to resume from (-snapshot). */
  def snapshotStateFile: String = _snapshotStateFile
  def snapshotStateFile_=(value: String): Unit = _snapshotStateFile = value

  /** Path of the weights to start from (-weights). */
  def snapshotModelFile: String = _snapshotModelFile
  def snapshotModelFile_=(value: String): Unit = _snapshotModelFile = value

  /** true if input images are resized to the layer's height and width */
  def resize: Boolean = _resize
  def resize_=(value: Boolean): Unit = _resize = value

  /** Network between executors: 0 NONE, 1 RDMA, 2 SOCKET (crema's Spark ranks always use TCP). */
  def connection: Int = _connection
  def connection_=(value: Int): Unit = _connection = value

  /** # of executors (ranks) in the cluster */
  def clusterSize: Int = _clusterSize
  def clusterSize_=(value: Int): Unit = _clusterSize = value

  /** Layer index of the training data source */
  def train_data_layer_id: Int = _train_data_layer_id

  /** Layer index of the test data source */
  def test_data_layer_id: Int = _test_data_layer_id

  def transform_thread_per_device: Int = _transform_thread_per_device
  def transform_thread_per_device_=(value: Int): Unit = _transform_thread_per_device = value

  /** Blob names of the feature outputs (the label blob included). */
  def features: Array[String] = _features
  def features_=(value: Array[String]): Unit =
    if (value != null && label != null && !label.isEmpty() && !value.contains(label)) {
      _features = value :+ label
    } else {
      _features = value
    }

  /** Output DataFrame format (json, parquet, ...). */
  def outputFormat: String = _outputFormat
  def outputFormat_=(value: String): Unit = _outputFormat = value

  def imageRoot: String = _imageRoot
  def imageRoot_=(value: String): Unit = _imageRoot = value

  def labelFile: String = _labelFile
  def labelFile_=(value: String): Unit = _labelFile = value

  /** # of LMDB RDD partitions */
  def lmdb_partitions: Int = _lmdb_partitions
  def lmdb_partitions_=(value: Int): Unit = _lmdb_partitions = value

  def captionFile: String = _captionFile
  def captionFile_=(value: String): Unit = _captionFile = value

  def captionLength: Int = _captionLength
  def captionLength_=(value: Int): Unit = _captionLength = value

  def vocabSize: Int = _vocabSize
  def vocabSize_=(value: Int): Unit = _vocabSize = value

  def imageCaptionDFDir: String = _imageCaptionDFDir
  def imageCaptionDFDir_=(value: String): Unit = _imageCaptionDFDir = value

  def vocabDir: String = _vocabDir
  def vocabDir_=(value: String): Unit = _vocabDir = value

  def embeddingDFDir: String = _embeddingDFDir
  def embeddingDFDir_=(value: String): Unit = _embeddingDFDir = value

  /** The solver prototxt, as caffe.Caffe.SolverParameter. */
  def solverParameter: SolverParameter = {
    if (_solverParameter == null && _solverText != null) _solverParameter = Proto.solverFromText(_solverText, _protoFile)
    else if (_solverParameter == null && _protoFile != null && _protoFile.length > 0) protoFile = _protoFile
    _solverParameter
  }

  /** The solver's net, as caffe.Caffe.NetParameter. */
  def netParam: NetParameter = {
    if (_netParam == null && _netText != null) _netParam = Proto.netFromText(_netText, _protoFile)
    else if (_netParam == null && _protoFile != null && _protoFile.length > 0) protoFile = _protoFile
    _netParam
  }

  def this(sc: SparkContext, args: Array[String]) {
    this(sc)
    val cmd: CommandLine = {
      val options: Options = new Options
      options.addOption("conf", "conf", true, "solver configuration")
      options.addOption("train", "train", false, "training mode")
      options.addOption("test", "test", false, "test mode")
      options.addOption("features", "features", true, "name of output blobs")
      options.addOption("label", "label", true, "name of label blobs to be included in features")
      options.addOption("outputFormat", "outputFormat", true,
        "feature output format, currently support json and parquet, default: json")
      options.addOption("model", "model", true, "model path")
      options.addOption("output", "output", true, "output path")
      options.addOption("devices", "devices", true, "number of local GPUs")
      options.addOption("persistent", "persistent", false,
        "should data files be persistented on local file system?")
      options.addOption("snapshot", "snapshot", true, "snapshot state file path")
      options.addOption("weights", "weights", true, "snapshot model file path")
      options.addOption("connection", "connection", true, "ethernet or infiniband (default)")
      options.addOption("resize", "resize", false, "resize input image")
      options.addOption("clusterSize", "clusterSize", true, "size of the cluster")
      options.addOption("lmdb_partitions", "lmdb_partitions", true, "the # of LMDB RDD partitions. Default: cluster size")
      options.addOption("imageRoot", "imageRoot", true, "image files' root")
      options.addOption("labelFile", "labelFile", true, "label file")
      options.addOption("captionFile", "captionFile", true, "caption file path")
      options.addOption("captionLength", "captionLength", true, "caption vector length")
      options.addOption("vocabSize", "vocabSize", true, "vocabulary size")
      options.addOption("imageCaptionDFDir", "imageCaptionDFDir", true, "Output Image Caption DataFrame Directory")
      options.addOption("vocabDir", "vocabDir", true, "Output Vocabulary Directory")
      options.addOption("embeddingDFDir", "embeddingDFDir", true, "Output Embedded DataFrame Directory")
      new BasicParser().parse(options, args)
    }
    def int(name: String, default: Int): Int =
      if (!cmd.hasOption(name)) default
      else {
        val v = cmd.getOptionValue(name)
        try Integer.parseInt(v.trim)
        catch {
          case _: NumberFormatException =>
            throw new IllegalArgumentException("-" + name + " " + v + ": not a number")
        }
      }

    protoFile = if (cmd.hasOption("conf")) cmd.getOptionValue("conf") else ""
    isTraining = cmd.hasOption("train")
    isTest = cmd.hasOption("test")
    isFeature = cmd.hasOption("features")
    label = if (cmd.hasOption("label")) cmd.getOptionValue("label") else ""
    modelPath = if (cmd.hasOption("model")) cmd.getOptionValue("model") else ""
    outputPath = if (cmd.hasOption("output")) cmd.getOptionValue("output") else "output"
    devices = int("devices", 1)
    isRddPersistent = cmd.hasOption("persistent")
    snapshotModelFile = if (cmd.hasOption("weights")) cmd.getOptionValue("weights") else ""
    snapshotStateFile = if (cmd.hasOption("snapshot")) cmd.getOptionValue("snapshot") else ""
    resize = cmd.hasOption("resize")
    connection = if (!cmd.hasOption("connection")) Config.RDMA
    else if (cmd.getOptionValue("connection").equalsIgnoreCase("ethernet")) Config.SOCKET
    else Config.RDMA

    clusterSize = {
      val sparkMaster = if (sc == null) "" else sc.getConf.get("spark.master", "")
      if (sc != null && sc.getConf.getBoolean("spark.dynamicAllocation.enabled", false)) {
        val maxExecutors = sc.getConf.getInt("spark.dynamicAllocation.maxExecutors", 1)
        val minExecutors = sc.getConf.getInt("spark.dynamicAllocation.minExecutors", 1)
        if (isTraining && maxExecutors != minExecutors)
          throw new IllegalArgumentException(
            "spark.dynamicAllocation.maxExecutors and spark.dynamicAllocation.minExecutors must be identical")
        minExecutors
      } else if (sparkMaster.startsWith("yarn")) {
        sc.getConf.getInt("spark.executor.instances", 1)
      } else int("clusterSize", 1)
    }

    features = if (cmd.hasOption("features")) cmd.getOptionValue("features").split(",") else null
    outputFormat = if (cmd.hasOption("outputFormat")) cmd.getOptionValue("outputFormat") else "json"
    lmdb_partitions = int("lmdb_partitions", clusterSize)
    imageRoot = if (cmd.hasOption("imageRoot")) cmd.getOptionValue("imageRoot") else null
    labelFile = if (cmd.hasOption("labelFile")) cmd.getOptionValue("labelFile") else null
    imageCaptionDFDir = if (cmd.hasOption("imageCaptionDFDir")) cmd.getOptionValue("imageCaptionDFDir") else ""
    vocabDir = if (cmd.hasOption("vocabDir")) cmd.getOptionValue("vocabDir") else ""
    embeddingDFDir = if (cmd.hasOption("embeddingDFDir")) cmd.getOptionValue("embeddingDFDir") else ""
    captionFile = if (cmd.hasOption("captionFile")) cmd.getOptionValue("captionFile") else ""
    captionLength = int("captionLength", 20)
    vocabSize = int("vocabSize", -1)
  }

  override def toString(): String = {
    val b = new StringBuilder()
    b.append("protoFile:").append(protoFile).append("\n")
    b.append("train:").append(isTraining).append("\n")
    b.append("test:").append(isTest).append("\n")
    if (features != null) b.append("features:").append(features.mkString(",")).append("\n")
    b.append("label:").append(label).append("\n")
    b.append("outputFormat:").append(outputFormat).append("\n")
    b.append("model:").append(modelPath).append("\n")
    b.append("output:").append(outputPath).append("\n")
    b.append("devices:").append(devices).append("\n")
    b.append("persistent:").append(isRddPersistent).append("\n")
    b.append("snapshot:").append(snapshotStateFile).append("\n")
    b.append("weights:").append(snapshotModelFile).append("\n")
    b.append("clusterSize:").append(clusterSize).append("\n")
    b.append("lmdb_partitions:").append(lmdb_partitions).append("\n")
    b.append("train_data_layer_id:").append(train_data_layer_id).append("\n")
    b.append("test_data_layer_id:").append(test_data_layer_id).append("\n")
    b.toString()
  }
}

object Config {
  /** CaffeOnSpark's connection constants (jcaffe's CaffeNet.NONE, RDMA, SOCKET). */
  val NONE: Int = 0
  val RDMA: Int = 1
  val SOCKET: Int = 2
}
