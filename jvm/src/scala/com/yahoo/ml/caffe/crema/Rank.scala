// What runs inside a Spark task, as crema.spark's rank.py: train() is one
// rank of the job (feeds each iteration's batch and steps the solver, which
// averages gradients over the ranks; rank 0 writes snapshots and the model
// itself, through the Hadoop file system); score() runs the TEST net over a
// partition for test() and features().
package com.yahoo.ml.caffe.crema

import java.lang.management.ManagementFactory
import java.net.InetAddress
import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.{Files => JFiles, Path, Paths}

import scala.collection.mutable.ArrayBuffer

import caffe.Caffe._

/** What a training task reports to the driver. */
private[caffe] case class TrainRecord(kind: String, rank: Int, iter: Int, file: String, names: Array[String],
                                      values: Array[Array[Float]], seconds: Double, images: Long, writer: String)

/** Rank 0's copies of snapshots to their file system, one at a time on a thread of their own. */
private[caffe] class Uploads {
  private var running: Thread = null
  @volatile private var failure: Throwable = null

  def start(body: () => Unit): Unit = {
    val t = new Thread(new Runnable {
      def run(): Unit = try body() catch { case e: Throwable => failure = e }
    }, "crema-snapshot-upload")
    t.setDaemon(true)
    t.start()
    running = t
  }

  /** Waits for the copy under way; rethrows its failure. */
  def finish(): Unit = {
    if (running != null) {
      running.join()
      running = null
    }
    if (failure != null) {
      val e = failure
      failure = null
      throw new java.io.IOException("copying a snapshot: " + e.getMessage, e)
    }
  }

  /** The task is ending on an error: a copy under way finishes on its own, or not. */
  def abandon(): Unit = running = null
}

private[caffe] object Rank {
  def log(msg: String): Unit = {
    System.err.println("crema: " + msg)
    System.err.flush()
  }

  /** host:pid, naming the process that wrote a file. */
  def processName(): String = InetAddress.getLocalHost.getHostName + ":" + ManagementFactory.getRuntimeMXBean.getName.split("@")(0)

  private val StateName = """(.+)_iter_(\d+)\.solverstate(\.h5)?""".r

  /** The newest whole snapshot (its state and model both there) under the job's snapshot directory:
   * (state uri, model uri, iteration), or null. */
  def newestSnapshot(job: Job): (String, String, Int) = {
    if (job.snapshotDir == null) return null
    val files = Files.list(job.snapshotDir, job.hadoop.value).map(_._1).toSet
    var best: (String, String, Int) = null
    for (f <- files) f match {
      case StateName(base, it, h5) if base == job.snapshotBase =>
        val model = base + "_iter_" + it + ".caffemodel" + (if (h5 == null) "" else ".h5")
        if (files.contains(model) && (best == null || it.toInt > best._3))
          best = (FileUris.child(job.snapshotDir, f), FileUris.child(job.snapshotDir, model), it.toInt)
      case _ =>
    }
    best
  }

  private def write(p: Path, text: String): String = {
    JFiles.write(p, text.getBytes(UTF_8))
    p.toString
  }

  /** The outputs of the TEST net averaged over testIter batches of each rank's validation data and over
   * the ranks: (names, values). */
  private def validate(job: Job, solver: Long, vnet: Long, feeder: Feeder, dist: Long, size: Int): (Array[String], Array[Array[Float]]) = {
    Native.netCopyParams(Native.solverNet(solver), vnet)
    val names = Native.netOutputs(vnet)
    var sums: Array[Float] = null
    var counts: Array[Int] = null
    for (_ <- 0 until job.testIter) {
      feeder.feed(vnet, 1, job.testLayer)
      Native.netForward(vnet)
      val outs = names.map { k =>
        val a = new Array[Float](Native.blobShape(vnet, k).product)
        Native.blobData(vnet, k, a)
        a
      }
      if (sums == null) {
        counts = outs.map(_.length)
        sums = new Array[Float](counts.sum)
      }
      var off = 0
      for (o <- outs) {
        for (i <- o.indices) sums(off + i) += o(i)
        off += o.length
      }
    }
    Native.distAllreduce(dist, sums)
    val scale = 1f / (job.testIter * size)
    var off = 0
    val values = counts.map { c =>
      val v = Array.tabulate(c)(i => sums(off + i) * scale)
      off += c
      v
    }
    (names, values)
  }

  private def hookMarker(spec: String, fields: Int): Array[String] =
    if (spec == null) null else {
      val f = spec.split(":", fields)
      if (f.length == fields && !JFiles.exists(Paths.get(f(fields - 1)))) f else null
    }

  /** Trains as `rank` of `size`. makeFeeder builds the train feeder from the task's partition;
   * valRows the validation samples of this rank (null: the validation source is an LMDB shard). */
  def train(job: Job, rank: Int, size: Int, address: String, secret: String, makeFeeder: Path => Feeder,
            makeValFeeder: Path => Feeder): Seq[TrainRecord] = {
    val work = Work.taskDir("rank" + rank)
    val records = new ArrayBuffer[TrainRecord]()
    val conf = job.hadoop.value
    var solver, vnet, dist = 0L
    var feeder, vfeeder: Feeder = null
    val uploads = new Uploads
    try {
      dist = Native.distOpen(rank, size, address, secret, job.timeoutMs)
      solver = Native.solverOpen(write(work.resolve("solver.prototxt"), job.solverText), rank == 0)
      if (job.weightsUri != null)
        Native.netLoadWeights(Native.solverNet(solver), Files.fetch(job.weightsUri, conf, Work.cacheDir()))
      val snap = newestSnapshot(job)
      val (state, stateWeights) =
        if (snap != null) (snap._1, snap._2)
        else if (job.stateUri != null) (job.stateUri, job.weightsUri)
        else (null, null)
      if (state != null) {
        val localState = Files.fetch(state, conf, work.resolve("resume"))
        val localWeights = if (stateWeights != null) Files.fetch(stateWeights, conf, work.resolve("resume")) else null
        Native.solverRestore(solver, localState, localWeights)
        val it = Native.solverIter(solver)
        log("rank " + rank + ": resuming from " + state + " at iteration " + it)
        records += TrainRecord("resume", rank, it, state, null, null, 0, 0, null)
      }
      Native.solverSetDist(solver, dist)
      feeder = makeFeeder(work)
      feeder.seek(Native.solverIter(solver).toLong * job.trainSpec.batch * job.iterSize)
      if (job.valSpec != null) {
        vfeeder = makeValFeeder(work)
        vnet = Native.netOpen(write(work.resolve("net.prototxt"), job.netText), null, Native.TEST)
        if (rank == 0) records += TrainRecord("outputs", rank, 0, null, Native.netOutputs(vnet), null, 0, 0, null)
      }
      def validation(it: Int): Unit = {
        val (names, values) = validate(job, solver, vnet, vfeeder, dist, size)
        if (rank == 0) {
          records += TrainRecord("validation", rank, it, null, names, values, 0, 0, null)
          log("iteration " + it + ": validation " + names.zip(values).map { case (k, v) => k + " = " + v.mkString(",") }.mkString(", "))
        }
      }
      val snapDir = work.resolve("snapshots")
      JFiles.createDirectories(snapDir)
      val failAt = hookMarker(job.failAt, 3)
      val killAt = hookMarker(job.killInSnapshot, 2)
      val t0 = System.nanoTime()
      val startIter = Native.solverIter(solver)
      val train = Native.solverNet(solver)
      while (Native.solverIter(solver) < job.maxIter) {
        val it = Native.solverIter(solver)
        if (vfeeder != null && job.testInterval > 0 && it % job.testInterval == 0 && (it > 0 || job.testInitialization))
          validation(it)
        feeder.feed(train, job.iterSize, null)
        if (failAt != null && failAt(0).toInt == rank && failAt(1).toInt == it) {
          JFiles.write(Paths.get(failAt(2)), Array[Byte]())
          log("rank " + rank + ": failing on purpose at iteration " + it + " (test hook)")
          throw new IllegalStateException("rank " + rank + " failed on purpose at iteration " + it + " (spark.crema.test.failAt)")
        }
        Native.solverStep(solver, 1)
        val done = Native.solverIter(solver)
        if (rank == 0 && job.snapshot > 0 && done % job.snapshot == 0 && job.snapshotDir != null)
          snapshot(job, solver, snapDir, done, if (killAt != null && killAt(0).toInt == done) killAt(1) else null,
            uploads)
      }
      if (vfeeder != null && job.testInterval > 0 && Native.solverIter(solver) % job.testInterval == 0)
        validation(Native.solverIter(solver))
      val seconds = (System.nanoTime() - t0) / 1e9
      val local = work.resolve("model" + (if (job.modelUri.endsWith(".h5")) ".caffemodel.h5" else ".caffemodel"))
      if (rank == 0) Native.netSaveWeights(train, local.toString)
      Native.distBarrier(dist)
      // the copies leave after the last collective: however long they take,
      // no rank waits on rank 0 past its timeout
      if (rank == 0) {
        uploads.finish()
        Files.upload(local, job.modelUri, conf)
        log("rank 0 wrote the model to " + job.modelUri)
        val it = Native.solverIter(solver)
        records += TrainRecord("done", rank, it, job.modelUri, null, null, seconds,
          (it - startIter).toLong * job.trainSpec.batch * job.iterSize * size, processName())
      }
    } finally {
      uploads.abandon()
      if (vnet != 0) Native.netFree(vnet)
      if (vfeeder != null) vfeeder.close()
      if (feeder != null) feeder.close()
      if (solver != 0) Native.solverFree(solver)
      if (dist != 0) Native.distFree(dist)
    }
    records
  }

  /** Rank 0's snapshot at iteration `it`: written locally by crema, then the model and then the state
   * copied beside -model (each to a temporary name, renamed), so that a state there always has its
   * model whole. The copy runs behind the training (one at a time). kill: the test hook's marker file
   * (the executor dies halfway through the state). */
  private def snapshot(job: Job, solver: Long, dir: Path, it: Int, kill: String, uploads: Uploads): Unit = {
    uploads.finish() // the previous snapshot's files leave first
    val prefix = dir.resolve(job.snapshotBase).toString
    Native.solverSnapshotTo(solver, prefix)
    val ext = if (job.snapshotH5) ".h5" else ""
    val conf = job.hadoop.value
    val model = Paths.get(prefix + "_iter_" + it + ".caffemodel" + ext)
    val state = Paths.get(prefix + "_iter_" + it + ".solverstate" + ext)
    val midway: () => Unit =
      if (kill == null) null
      else () => {
        JFiles.write(Paths.get(kill), Array[Byte]())
        log("rank 0: the executor dies halfway through writing " + state.getFileName + " (test hook)")
        Runtime.getRuntime.halt(3)
      }
    uploads.start { () =>
      Files.upload(model, FileUris.child(job.snapshotDir, model.getFileName.toString), conf)
      Files.upload(state, FileUris.child(job.snapshotDir, state.getFileName.toString), conf, midway)
      log("rank 0 wrote snapshot " + FileUris.child(job.snapshotDir, state.getFileName.toString))
      JFiles.deleteIfExists(model)
      JFiles.deleteIfExists(state)
    }
  }

  // ---- test and features ----

  private def phases(l: LayerParameter): Set[Phase] = {
    var p: Set[Phase] = Set(Phase.TRAIN, Phase.TEST)
    val inc = (0 until l.getIncludeCount).map(l.getInclude(_)).filter(_.hasPhase).map(_.getPhase)
    if (inc.nonEmpty) p = inc.toSet
    for (i <- 0 until l.getExcludeCount if l.getExclude(i).hasPhase) p -= l.getExclude(i).getPhase
    p
  }

  /** The job's net with its TEST data layer `layer` taking `batch` samples. */
  private def tailNet(job: Job, layer: String, batch: Int): String = {
    val b = Proto.netFromText(job.netText, "net").toBuilder
    for (i <- 0 until b.getLayerCount) {
      val l = b.getLayerBuilder(i)
      if (l.getName == layer && phases(l.build()).contains(Phase.TEST)) {
        if (l.hasMemoryDataParam) l.getMemoryDataParamBuilder.setBatchSize(batch)
        if (l.hasCosDataParam) l.getCosDataParamBuilder.setBatchSize(batch)
      }
    }
    Proto.toText(b.build())
  }

  /** Runs the TEST net with the model over every sample of the partition once. mode "test": one
   * (sums of every output weighted by its samples, names, sizes, count) in `sums`; "features": rows
   * (SampleID, one array per feature blob) to `emit`. */
  def score(job: Job, spec: FeedSpec, makeFeeder: Path => Feeder, mode: String,
            emit: (String, Array[Array[Float]]) => Unit): (Array[String], Array[Int], Array[Double], Long) = {
    val work = Work.taskDir("score")
    val model = Files.fetch(job.modelUri, job.hadoop.value, Work.cacheDir())
    val netPath = write(work.resolve("net.prototxt"), job.netText)
    var net, tail = 0L
    var feeder: Feeder = null
    try {
      net = Native.netOpen(netPath, model, Native.TEST)
      feeder = makeFeeder(work)
      val names = Native.netOutputs(net)
      var sizes: Array[Int] = null
      var sums: Array[Double] = null
      var count = 0L
      val n = feeder.n
      val b = spec.batch
      def addSums(h: Long, real: Int): Unit = {
        val outs = names.map { k =>
          val a = new Array[Float](Native.blobShape(h, k).product)
          Native.blobData(h, k, a)
          a
        }
        if (sums == null) {
          sizes = outs.map(_.length)
          sums = new Array[Double](sizes.sum)
        }
        var off = 0
        for (o <- outs) {
          for (i <- o.indices) sums(off + i) += o(i).toDouble * real
          off += o.length
        }
        count += real
      }
      var start = 0
      while (start < n) {
        val real = math.min(b, n - start)
        if (mode == "test" && real < b) {
          // a net whose batch is the remainder: every sample counts once
          tail = Native.netOpen(write(work.resolve("net_tail.prototxt"), tailNet(job, spec.layer, real)), model, Native.TEST)
          feeder.feed(tail, 1, spec.layer, real)
          Native.netForward(tail)
          addSums(tail, real)
        } else {
          val first = feeder.feed(net, 1, spec.layer)
          Native.netForward(net)
          if (mode == "test") addSums(net, real)
          else {
            val ids = feeder.sampleIds(first, real)
            val blobs = job.features.map { k =>
              val a = new Array[Float](Native.blobShape(net, k).product)
              Native.blobData(net, k, a)
              a
            }
            for (i <- 0 until real) {
              // a blob with a value per sample gives each its own; any other
              // (an aggregate) is repeated for every sample, as CaffeOnSpark did
              emit(ids(i), blobs.map { a =>
                if (a.length >= b && a.length % b == 0) {
                  val per = a.length / b
                  java.util.Arrays.copyOfRange(a, i * per, (i + 1) * per)
                } else a.clone()
              })
            }
          }
        }
        start += b
      }
      (names, if (sizes == null) Array[Int]() else sizes, if (sums == null) Array[Double]() else sums, count)
    } finally {
      if (feeder != null) feeder.close()
      if (tail != 0) Native.netFree(tail)
      if (net != 0) Native.netFree(net)
    }
  }
}
