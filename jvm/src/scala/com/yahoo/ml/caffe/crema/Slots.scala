// The slot check before a barrier stage, as crema.spark does it: fail at
// once when the master cannot give clusterSize task slots, else wait for the
// executors to register (spark.crema.slotWait seconds, 120 by default).
package com.yahoo.ml.caffe.crema

import org.apache.spark.SparkContext

private[caffe] object Slots {
  private val Local = """local\[(\d+|\*)(,\d+)?\]""".r
  private val LocalCluster = """local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*\d+\s*\]""".r

  /** The task slots the application will have once its executors are up, when the master or the
   * configuration says; -1 when it does not. */
  def planned(sc: SparkContext): Int = {
    val conf = sc.getConf
    val cpus = conf.getInt("spark.task.cpus", 1)
    sc.master match {
      case Local(n, _) => if (n == "*") Runtime.getRuntime.availableProcessors else n.toInt
      case "local" => 1
      case LocalCluster(n, c) => n.toInt * c.toInt / cpus
      case _ =>
        val inst = conf.getOption("spark.executor.instances")
        val cores = conf.getOption("spark.executor.cores")
        val dyn = conf.getBoolean("spark.dynamicAllocation.enabled", false)
        if (inst.isDefined && cores.isDefined && !dyn) inst.get.toInt * cores.get.toInt / cpus else -1
    }
  }

  def check(sc: SparkContext, clusterSize: Int): Int = {
    val p = planned(sc)
    if (p >= 0 && p < clusterSize)
      throw new IllegalArgumentException("clusterSize " + clusterSize + " is larger than the " + p +
        " task slots of this Spark application (master " + sc.master + "): every rank needs a slot at the same " +
        "time; start more executors or cores, or lower -clusterSize")
    val waitS = sc.getConf.getDouble("spark.crema.slotWait", 120.0)
    val deadline = System.nanoTime() + (waitS * 1e9).toLong
    var slots = SparkInternals.availableSlots(sc)
    while (slots < clusterSize && System.nanoTime() < deadline) {
      Thread.sleep(500)
      slots = SparkInternals.availableSlots(sc)
    }
    if (slots < clusterSize)
      throw new IllegalArgumentException("clusterSize " + clusterSize + " is larger than the " + slots +
        " task slots this Spark application has after " + waitS + " s (master " + sc.master + "): every rank " +
        "needs a slot at the same time; start more executors or cores, or lower -clusterSize")
    slots
  }
}
