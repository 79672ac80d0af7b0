// CaffeOnSpark's SeqImageDataSource: images from Hadoop SequenceFiles.
package com.yahoo.ml.caffe

import java.io.{ByteArrayInputStream, ObjectInputStream}

import org.apache.hadoop.io.{BytesWritable, Text, Writable}
import org.apache.spark.SparkContext
import org.apache.spark.rdd.RDD

/**
 * SeqImageDataSource reads SequenceFiles of (key, BytesWritable image). Keys as CaffeOnSpark wrote
 * them: BytesWritable holding a Java-serialized (id, label) pair (encoded images) or (id, label,
 * channels, height, width, encoded) tuple; or Text keys "id TAB label" / "id TAB label TAB channels
 * TAB height TAB width TAB encoded" as crema.spark's tools write them.
 */
class SeqImageDataSource(conf: Config, layerId: Int, isTrain: Boolean)
  extends ImageDataSource(conf, layerId, isTrain) {

  def makeRDD(sc: SparkContext): RDD[(String, String, Int, Int, Int, Boolean, Array[Byte])] = {
    val path = sourceFilePath
    // Hadoop's reader reuses its objects: every record is copied out
    sc.sequenceFile(path, classOf[Writable], classOf[BytesWritable], math.max(1, conf.clusterSize)).map {
      case (key, value) =>
        var id: String = null
        var label: String = null
        var channels = 1
        var height = 0
        var width = 0
        var encoded = false
        key match {
          case t: Text =>
            val f = t.toString.split("\t", -1)
            id = f(0)
            label = if (f.length > 1) f(1) else null
            if (f.length >= 6) {
              channels = f(2).toInt; height = f(3).toInt; width = f(4).toInt; encoded = f(5).equalsIgnoreCase("true")
            } else encoded = true
          case b: BytesWritable =>
            val ois = new ObjectInputStream(new ByteArrayInputStream(b.copyBytes()))
            try {
              ois.readObject match {
                case (i: String, l: String) => id = i; label = l; encoded = true
                case (i: String, l: String, c: Int, h: Int, w: Int, e: Boolean) =>
                  id = i; label = l; channels = c; height = h; width = w; encoded = e
                case other =>
                  throw new IllegalArgumentException(path + ": a key holds a " + other.getClass.getName +
                    ", not an (id, label) pair or (id, label, channels, height, width, encoded) tuple")
              }
            } finally ois.close()
          case null =>
          case other =>
            throw new IllegalArgumentException(path + ": keys of class " + other.getClass.getName +
              " (SeqImageDataSource reads BytesWritable or Text keys)")
        }
        (id, label, channels, height, width, encoded, if (value != null) value.copyBytes() else null)
    }
  }
}
