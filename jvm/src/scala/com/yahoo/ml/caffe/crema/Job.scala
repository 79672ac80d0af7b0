// What a job's tasks need, built on the driver and shipped in the task
// closure: the solver and net as text (the ranks never read the prototxt
// files), each data layer's feed, and where the model and snapshots go.
package com.yahoo.ml.caffe.crema

import caffe.Caffe._
import com.yahoo.ml.caffe.{Config, DataSource}

/** What a rank feeds into a data layer: "image" (MemoryData, rows of images), "lmdb" (MemoryData,
 * each rank reads its shard) or "cos" (CoSData, rows of columns). */
private[caffe] case class FeedSpec(kind: String, layer: String, batch: Int, channels: Int, height: Int, width: Int,
                                   encoded: Boolean, resize: Boolean, lmdbUri: String, transform: Array[Byte],
                                   topNames: Array[String], topTypes: Array[Int])

private[caffe] object FeedSpec {
  def image(layer: String, batch: Int, c: Int, h: Int, w: Int, encoded: Boolean, resize: Boolean): FeedSpec =
    FeedSpec("image", layer, batch, c, h, w, encoded, resize, null, null, null, null)

  def lmdb(layer: String, batch: Int, uri: String, transform: Array[Byte], c: Int, h: Int, w: Int): FeedSpec =
    FeedSpec("lmdb", layer, batch, c, h, w, false, false, uri, transform, null, null)

  def cos(layer: String, batch: Int, names: Array[String], types: Array[Int]): FeedSpec =
    FeedSpec("cos", layer, batch, 0, 0, 0, false, false, null, null, names, types)
}

private[caffe] class Job extends Serializable {
  var solverText: String = _ // the net inline, no test nets, snapshots taken by the ranks
  var netText: String = _    // the net the ranks build for validation, test and features
  var maxIter = 0
  var testInterval = 0
  var testIter = 1
  var testInitialization = true
  var snapshot = 0
  var snapshotH5 = false
  var iterSize = 1
  var timeoutMs = 60000
  var features: Array[String] = Array()
  var label: String = ""
  var modelUri: String = _
  var snapshotDir: String = _  // the directory of -model
  var snapshotBase: String = _ // the basename of snapshot_prefix
  var weightsUri: String = _
  var stateUri: String = _
  var trainSpec: FeedSpec = _
  var valSpec: FeedSpec = _
  var testLayer: String = _
  var hadoop: HadoopConf = _
  // test hooks (spark.crema.test.*): a rank that fails on purpose
  var failAt: String = _         // "rank:iter:markerfile": the rank exits at that iteration, once
  var killInSnapshot: String = _ // "iter:markerfile": rank 0's executor dies halfway through that snapshot, once
}

private[caffe] object Job {
  /** The net as the ranks build it: MemoryData layers lose their source_class, since the ranks feed
   * them (crema alone would read an LMDB source itself). */
  def fedNet(np: NetParameter): NetParameter = {
    val b = np.toBuilder
    for (i <- 0 until b.getLayerCount) {
      val l = b.getLayerBuilder(i)
      if (l.getType == "MemoryData") l.clearSourceClass()
    }
    b.build()
  }

  def build(conf: Config, train: DataSource[_, _], validation: DataSource[_, _], hadoop: HadoopConf,
            sparkConf: org.apache.spark.SparkConf): Job = {
    val sp = conf.solverParameter
    val job = new Job
    val fed = fedNet(conf.netParam)
    job.netText = Proto.toText(fed)
    job.maxIter = sp.getMaxIter
    job.testInterval = sp.getTestInterval
    job.testIter = if (sp.getTestIterCount > 0) sp.getTestIter(0) else 1
    job.testInitialization = sp.getTestInitialization
    job.snapshot = sp.getSnapshot
    job.snapshotH5 = sp.getSnapshotFormat == SolverParameter.SnapshotFormat.HDF5
    job.iterSize = math.max(1, sp.getIterSize)
    job.timeoutMs = sparkConf.getInt("spark.crema.timeoutMs", sys.env.getOrElse("CREMA_SPARK_TIMEOUT_MS", "60000").toInt)
    job.features = Option(conf.features).getOrElse(Array[String]())
    job.label = Option(conf.label).getOrElse("")
    job.hadoop = hadoop
    if (conf.modelPath != null && conf.modelPath.nonEmpty) {
      job.modelUri = conf.modelPath
      job.snapshotDir = FileUris.parent(conf.modelPath)
      val prefix = if (sp.hasSnapshotPrefix && sp.getSnapshotPrefix.nonEmpty) sp.getSnapshotPrefix else "snapshot"
      job.snapshotBase = FileUris.name(prefix)
    }
    if (conf.snapshotModelFile != null && conf.snapshotModelFile.nonEmpty) job.weightsUri = conf.snapshotModelFile
    if (conf.snapshotStateFile != null && conf.snapshotStateFile.nonEmpty) job.stateUri = conf.snapshotStateFile
    // every rank builds this solver, byte for byte (the ranks check it): the
    // net inline, no test nets (validation is fed by the ranks), the
    // snapshot_prefix named after -model, snapshots taken by rank 0 itself
    val s = sp.toBuilder
      .clearNet().clearTrainNet().clearTestNet().clearNetParam().clearTrainNetParam().clearTestNetParam()
      .clearTestIter().clearTestInterval().clearTestInitialization().clearTestState().clearWeights()
      .setNetParam(fed)
      .setSnapshot(0)
      .setSnapshotAfterTrain(false)
    if (job.snapshotDir != null) s.setSnapshotPrefix(FileUris.child(job.snapshotDir, job.snapshotBase))
    job.solverText = Proto.toText(s.build())
    if (train != null) job.trainSpec = train.feedSpec()
    val test = if (validation != null) validation else null
    if (test != null) {
      job.valSpec = test.feedSpec()
      job.testLayer = test.layerName
    }
    job.failAt = sparkConf.get("spark.crema.test.failAt", null)
    job.killInSnapshot = sparkConf.get("spark.crema.test.killInSnapshot", null)
    job
  }
}
