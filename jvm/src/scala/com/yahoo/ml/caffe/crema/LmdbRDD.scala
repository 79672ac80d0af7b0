// The records of an LMDB of Datums as CaffeOnSpark's image tuples: each
// partition reads its shard with crema's reader (no transform), as
// crema.spark's LMDB2DataFrame does.
package com.yahoo.ml.caffe.crema

import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.{Files => JFiles}

import caffe.Caffe._
import org.apache.spark.rdd.RDD
import org.apache.spark.{Partition, SparkContext, TaskContext}

private[caffe] class LmdbPartition(val index: Int) extends Partition

private[caffe] class LmdbRDD(@transient sc: SparkContext, val uri: String, val numPartitions: Int)
  extends RDD[(String, String, Int, Int, Int, Boolean, Array[Byte])](sc, Nil) {
  private val hadoop = new HadoopConf(sc.hadoopConfiguration)

  override protected def getPartitions: Array[Partition] =
    Array.tabulate[Partition](numPartitions)(i => new LmdbPartition(i))

  override def compute(split: Partition, context: TaskContext): Iterator[(String, String, Int, Int, Int, Boolean, Array[Byte])] = {
    val r = split.index
    val work = Work.taskDir("lmdb")
    val path = Files.fetchDir(uri, hadoop.value, Work.cacheDir())
    val total = Native.dbCount(path, "lmdb")
    val n = ((total - r + numPartitions - 1) / numPartitions).toInt max 0
    if (n == 0) return Iterator.empty
    val batch = 256
    val reader = work.resolve("reader.prototxt")
    JFiles.write(reader, LmdbReader.text(path, batch, null).getBytes(UTF_8))
    val net = Native.netOpen(reader.toString, null, Native.TEST)
    context.addTaskCompletionListener[Unit](_ => Native.netFree(net))
    Native.netSetDataShard(net, "data", r, numPartitions)
    (0 until n by batch).iterator.flatMap { start =>
      Native.netForward(net)
      val shape = Native.blobShape(net, "data")
      val data = new Array[Float](shape.product)
      Native.blobData(net, "data", data)
      val labels = new Array[Float](shape(0))
      Native.blobData(net, "label", labels)
      val real = math.min(batch, n - start)
      val (c, h, w) = (if (shape.length > 1) shape(1) else 1, if (shape.length > 2) shape(2) else 1,
        if (shape.length > 3) shape(3) else 1)
      val per = c * h * w
      (0 until real).iterator.map { i =>
        val img = new Array[Byte](per)
        for (k <- 0 until per) img(k) = math.max(0, math.min(255, math.rint(data(i * per + k)).toInt)).toByte
        ((r + numPartitions.toLong * (start + i)).toString, labels(i).toLong.toString, c, h, w, false, img)
      }
    }
  }
}

private[caffe] object LmdbReader {
  /** A net of one Data layer "data" (tops data, label) over the LMDB at path. */
  def text(path: String, batch: Int, transform: Array[Byte]): String = {
    val l = LayerParameter.newBuilder().setName("data").setType("Data").addTop("data").addTop("label")
      .setDataParam(DataParameter.newBuilder().setSource(path).setBackend(DataParameter.DB.LMDB).setBatchSize(batch))
    if (transform != null) l.setTransformParam(TransformationParameter.parseFrom(transform))
    Proto.toText(NetParameter.newBuilder().setName("reader").addLayer(l).build())
  }
}
