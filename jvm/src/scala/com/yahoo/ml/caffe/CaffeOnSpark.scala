// CaffeOnSpark's API on crema: train, trainWithValidation, test and
// features, and the command line spark-submit runs. Training is one Spark
// stage in barrier mode, one crema rank per task; the ranks meet at rank
// 0's rendezvous, whose address travels by BarrierTaskContext.allGather.
package com.yahoo.ml.caffe

import java.io.PrintWriter
import java.net.ServerSocket
import java.nio.charset.StandardCharsets.UTF_8
import java.security.SecureRandom

import scala.collection.mutable

import com.yahoo.ml.caffe.crema._
import org.apache.spark.{BarrierTaskContext, ExceptionFailure, SparkConf, SparkContext, SparkException, TaskContext}
import org.apache.spark.scheduler.{SparkListener, SparkListenerTaskEnd}
import org.apache.spark.ml.linalg.Vectors
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.expressions.UserDefinedFunction
import org.apache.spark.sql.functions.udf
import org.apache.spark.sql.types.{ArrayType, FloatType, StringType, StructField, StructType}
import org.apache.spark.sql.{DataFrame, Row, SparkSession}
import org.apache.spark.storage.StorageLevel
import org.slf4j.{Logger, LoggerFactory}

object CaffeOnSpark {
  private val log: Logger = LoggerFactory.getLogger(this.getClass)

  /** spark-submit --class com.yahoo.ml.caffe.CaffeOnSpark crema.jar -train -features ip1 -label label
   * -conf solver.prototxt -clusterSize 2 -model hdfs://... -output hdfs://... */
  def main(args: Array[String]): Unit = {
    val scConf = new SparkConf()
    scConf.set("spark.serializer", "org.apache.spark.serializer.KryoSerializer")
      .set("spark.scheduler.minRegisteredResourcesRatio", "1.0")
    if (!scConf.contains("spark.app.name")) scConf.setAppName("CaffeOnSpark")
    val sc = new SparkContext(scConf)
    val status = try {
      run(sc, args)
      0
    } catch {
      case e: Throwable =>
        System.err.println("CaffeOnSpark: " + describe(e))
        log.debug("CaffeOnSpark failed", e)
        1
    } finally sc.stop()
    if (status != 0) sys.exit(status)
  }

  /** An exception and its causes, each message once. */
  private[caffe] def describe(e: Throwable): String = {
    val seen = mutable.LinkedHashSet[String]()
    var t = e
    while (t != null) {
      val m = if (t.getMessage != null) t.getMessage.split("\n")(0) else t.getClass.getName
      if (!seen.exists(_.contains(m))) seen += m
      t = t.getCause
    }
    seen.mkString(": caused by: ")
  }

  private def run(sc: SparkContext, args: Array[String]): Unit = {
    val conf = new Config(sc, args)
    if (!(conf.isTraining || conf.isTest || conf.isFeature))
      throw new IllegalArgumentException("give -train, -test or -features")
    val caffeSpark = new CaffeOnSpark(sc)
    if (conf.isTraining) {
      val sp = conf.solverParameter
      if (sp.hasTestInterval && sp.getTestInterval != 0 && sp.getTestIterCount > 0 && sp.getTestIter(0) != 0) {
        val sourceTrain = DataSource.getSource(conf, true).asInstanceOf[DataSource[Any, Any]]
        val sourceValidation = DataSource.getSource(conf, false).asInstanceOf[DataSource[Any, Any]]
        caffeSpark.trainWithValidation(sourceTrain, sourceValidation)
      } else {
        caffeSpark.train(DataSource.getSource(conf, true).asInstanceOf[DataSource[Any, Any]])
      }
    }
    if (conf.isFeature || conf.isTest) {
      val source = DataSource.getSource(conf, false)
      if (conf.isFeature) {
        val featureDF = caffeSpark.features(source)
        featureDF.write.format(source.conf.outputFormat).save(source.conf.outputPath)
      } else {
        val result = caffeSpark.test(source)
        val text = result.map { case (name, r) => name + ": " + r.mkString(",") + "\n" }.mkString
        // the driver holds the result: it writes -output itself
        crema.Files.writeAtomic(conf.outputPath, sc.hadoopConfiguration)(_.write(text.getBytes(UTF_8)))
        print(text)
      }
    }
  }
}

/** Why the ranks of a job failed: the first failure other than a lost peer (which is what the other
 * ranks see when one fails), else the first. */
private[caffe] class FirstFailure extends SparkListener {
  @volatile private var cause: String = null
  @volatile private var peer: String = null

  def first: String = if (cause != null) cause else peer

  /** The listener bus runs behind the scheduler: wait a little for the failures to arrive. */
  def await(): Unit = {
    val deadline = System.nanoTime() + 3000000000L
    while (cause == null && System.nanoTime() < deadline) Thread.sleep(50)
  }

  override def onTaskEnd(e: SparkListenerTaskEnd): Unit = e.reason match {
    case f: ExceptionFailure =>
      val what = "rank " + e.taskInfo.index + ": " + f.className + ": " + f.description
      if (f.className == classOf[CremaDistException].getName) { if (peer == null) peer = what }
      else if (cause == null) cause = what
    case _ =>
  }
}

/**
 * CaffeOnSpark is the main class for distributed deep learning: it runs crema ranks within Spark
 * executors, trained on, and extracting features from, Spark data sources.
 *
 * @param sc Spark Context
 */
class CaffeOnSpark(@transient val sc: SparkContext) extends Serializable {
  @transient private val log: Logger = LoggerFactory.getLogger(this.getClass)
  @transient private lazy val spark: SparkSession = SparkSession.builder().config(sc.getConf).getOrCreate()
  @transient val floatarray2doubleUDF: UserDefinedFunction = udf((float_features: Seq[Float]) => {
    float_features(0).toDouble
  })
  @transient val floatarray2doublevectorUDF: UserDefinedFunction = udf((float_features: Seq[Float]) => {
    Vectors.dense(float_features.map(_.toDouble).toArray)
  })

  private def hadoop = new HadoopConf(sc.hadoopConfiguration)

  /** Checks what training needs before any task starts, naming what is wrong. */
  private def checkTraining(conf: Config): Unit = {
    if (conf.clusterSize < 1) throw new IllegalArgumentException("clusterSize must be at least 1 (got " + conf.clusterSize + ")")
    if (conf.modelPath == null || conf.modelPath.isEmpty)
      throw new IllegalArgumentException("train: give -model (where the trained model goes)")
    if (!conf.snapshotStateFile.isEmpty && conf.snapshotModelFile.isEmpty) {
      log.error("to resume training, please provide input model file")
      throw new IllegalStateException("input model file must be provided for incremental training")
    }
    // the model's directory must be reachable before the ranks start
    val dir = FileUris.parent(conf.modelPath)
    try crema.Files.mkdirs(dir, sc.hadoopConfiguration) catch {
      case e: java.io.IOException =>
        throw new java.io.IOException("-model " + conf.modelPath + ": cannot reach or create " + dir + ": " +
          CaffeOnSpark.describe(e), e)
    }
    Slots.check(sc, conf.clusterSize)
  }

  /** The RDD whose partitions the ranks feed (for LMDB, one empty partition per rank). */
  private def partitioned(source: DataSource[_, _], n: Int): RDD[Any] = source match {
    case _: LMDB => sc.parallelize(0 until n, n).map(i => i: Any)
    case s: DataSource[_, _] => s.makeRDD(sc).asInstanceOf[RDD[Any]].repartition(n)
  }

  private def feederFor(spec: FeedSpec, rows: Iterator[Any], rank: Int, size: Int, phase: Int,
                        job: Job): java.nio.file.Path => Feeder = spec.kind match {
    case "lmdb" => work => new LmdbFeeder(spec, rank, size, phase, work, job.hadoop.value)
    case "cos" => _ => new CoSFeeder(spec, rows.asInstanceOf[Iterator[(String, Array[Any])]])
    case _ => _ => new ImageFeeder(spec, rows.asInstanceOf[Iterator[(String, String, Int, Int, Int, Boolean, Array[Byte])]])
  }

  /**
   * Training with a specific data source
   * @param source input data source
   */
  def train[T1, T2](source: DataSource[T1, T2]): Unit = runTraining(source, null)

  /**
   * Training interleaved with validation: every test_interval iterations each rank runs the TEST net on
   * test_iter batches of its share of the validation source; the outputs are averaged over the ranks.
   * @return DataFrame of validation results: one row per validation, one array<float> column per output
   */
  def trainWithValidation[T1, T2](sourceTrain: DataSource[T1, T2], sourceValidation: DataSource[T1, T2]): DataFrame = {
    val records = runTraining(sourceTrain, sourceValidation)
    val vals = records.filter(_.kind == "validation").sortBy(_.iter)
    val names: Array[String] = records.find(_.kind == "outputs").map(_.names).getOrElse(Array())
    val schema = StructType(names.map(n => StructField(n, ArrayType(FloatType, false), false)))
    val rows = vals.map(v => Row.fromSeq(v.values.map(_.toSeq).toSeq))
    import scala.collection.JavaConverters._
    spark.createDataFrame(rows.toList.asJava, schema).persist(StorageLevel.DISK_ONLY)
  }

  private def runTraining(source: DataSource[_, _], validation: DataSource[_, _]): Seq[TrainRecord] = {
    val conf = source.conf
    checkTraining(conf)
    val size = conf.clusterSize
    val job = Job.build(conf, source, validation, hadoop, sc.getConf)
    val valRows: Array[Any] =
      if (validation == null || job.valSpec.kind == "lmdb") null
      else {
        val rows = validation.makeRDD(sc).asInstanceOf[RDD[Any]].collect()
        if (rows.isEmpty) throw new IllegalArgumentException("the validation source is empty")
        rows
      }
    val valBc = if (valRows != null) sc.broadcast(valRows) else null
    val data = partitioned(source, size)
    val secret = {
      val b = new Array[Byte](16)
      new SecureRandom().nextBytes(b)
      b.map("%02x".format(_)).mkString
    }
    val isLmdb = job.trainSpec.kind == "lmdb"
    if (sc.isLocal) SparkInternals.releaseBarrierTimerAfterMain()
    val self = this
    val out = data.barrier().mapPartitions { rows =>
      val ctx = BarrierTaskContext.get()
      val r = ctx.partitionId()
      val infos = ctx.getTaskInfos()
      val port = if (r == 0) {
        val s = new ServerSocket(0)
        try s.getLocalPort.toString finally s.close()
      } else ""
      val gathered = ctx.allGather(port)
      val host = infos(0).address.split(":")(0)
      val address = host + ":" + gathered(0)
      val n = infos.length
      val trainRows = if (isLmdb) Iterator.empty else rows
      val makeVal: java.nio.file.Path => Feeder =
        if (job.valSpec == null) null
        else if (valBc == null) self.feederFor(job.valSpec, Iterator.empty, r, n, Native.TEST, job)
        else {
          val all = valBc.value
          val lo = (all.length.toLong * r / n).toInt
          val hi = (all.length.toLong * (r + 1) / n).toInt
          self.feederFor(job.valSpec, all.slice(lo, hi).iterator, r, n, Native.TEST, job)
        }
      Rank.train(job, r, n, address, secret, self.feederFor(job.trainSpec, trainRows, r, n, Native.TRAIN, job), makeVal).iterator
    }
    // a shuffle after the barrier stage makes it a ShuffleMapStage: Spark
    // retries those (every task together) when a task fails, never a
    // barrier ResultStage
    val firstFailure = new FirstFailure
    sc.addSparkListener(firstFailure)
    val records = try out.repartition(1).collect().toSeq catch {
      case e: SparkException =>
        // the stage's failure names the last rank to fail, often one that
        // only lost its peer; the first failure is the cause
        firstFailure.await()
        if (firstFailure.first == null) throw e
        throw new SparkException("training failed: " + firstFailure.first + " (" + e.getMessage.split("\n")(0) + ")", e)
    } finally sc.removeSparkListener(firstFailure)
    for (rec <- records) {
      if (rec.kind == "resume") log.info("rank " + rec.rank + " resumed from " + rec.file + " at iteration " + rec.iter)
      if (rec.kind == "done") {
        lastTrainRecord = rec
        log.info("rank 0 (" + rec.writer + ") wrote " + rec.file + " at iteration " + rec.iter)
        if (rec.seconds > 0)
          log.info(f"training loop: ${rec.images}%d images in ${rec.seconds}%.2f s (${rec.images / rec.seconds}%.0f images/s)")
      }
    }
    records
  }

  /** The "done" record of the last training: iteration, seconds of the training loop, images, writer. */
  @transient private[caffe] var lastTrainRecord: TrainRecord = null

  // ---- test and features ----

  private def scoreJob(source: DataSource[_, _]): Job = {
    val conf = source.conf
    if (conf.modelPath == null || conf.modelPath.isEmpty)
      throw new IllegalArgumentException("give -model (the model to test or extract features with)")
    if (!crema.Files.exists(conf.modelPath, sc.hadoopConfiguration))
      throw new IllegalArgumentException("-model " + conf.modelPath + ": no such model")
    Job.build(conf, null, null, hadoop, sc.getConf)
  }

  /**
   * Test with a specific data source: the mean over every sample of each output of the TEST net.
   * @param source input data source
   * @return key/value map for mean values of output layers
   */
  def test[T1, T2](source: DataSource[T1, T2]): Map[String, Seq[Double]] = {
    source.conf.isTest = true
    val job = scoreJob(source)
    val spec = source.feedSpec()
    val parts = math.max(1, source.conf.clusterSize)
    val self = this
    val partial = partitioned(source, parts).mapPartitions { rows =>
      val r = TaskContext.getPartitionId()
      if (spec.kind != "lmdb" && !rows.hasNext) Iterator.empty
      else {
        val res = Rank.score(job, spec, self.feederFor(spec, rows, r, parts, Native.TEST, job), "test", (_, _) => ())
        Iterator(res)
      }
    }.collect().filter(_._4 > 0)
    if (partial.isEmpty) throw new IllegalArgumentException("test: the source has no samples")
    val (names, sizes) = (partial(0)._1, partial(0)._2)
    val total = partial.map(_._3).reduce((a, b) => a.zip(b).map { case (x, y) => x + y })
    val count = partial.map(_._4).sum
    var off = 0
    names.zip(sizes).map { case (k, n) =>
      val v = total.slice(off, off + n).map(_ / count).toSeq
      off += n
      k -> v
    }.toMap
  }

  /**
   * Extract features from a specific data source.
   * @param source input data source
   * @return DataFrame of SampleID and one array<float> column per blob of conf.features (the label too)
   */
  def features[T1, T2](source: DataSource[T1, T2]): DataFrame = {
    source.conf.isTest = false
    val conf = source.conf
    if (conf.features == null || conf.features.isEmpty)
      throw new IllegalArgumentException("features: give -features blob1,blob2")
    val job = scoreJob(source)
    val spec = source.feedSpec()
    val parts = math.max(1, conf.clusterSize)
    val self = this
    val rows = partitioned(source, parts).mapPartitions { it =>
      val r = TaskContext.getPartitionId()
      if (spec.kind != "lmdb" && !it.hasNext) Iterator.empty
      else {
        val out = new mutable.ArrayBuffer[Row]()
        Rank.score(job, spec, self.feederFor(spec, it, r, parts, Native.TEST, job), "features",
          (id, blobs) => out += Row.fromSeq(id +: blobs.map(_.toSeq).toSeq))
        out.iterator
      }
    }
    val schema = StructType(StructField("SampleID", StringType, false) +:
      job.features.map(n => StructField(n, ArrayType(FloatType, false), false)))
    log.info("Schema:" + schema)
    val df = spark.createDataFrame(rows, schema).persist(StorageLevel.DISK_ONLY)
    df.count()
    df
  }
}
