// CaffeOnSpark's Binary2Sequence: image files named by a label file as a
// SequenceFile of (Java-serialized (filename, label), image bytes), which
// SeqImageDataSource reads.
package com.yahoo.ml.caffe.tools

import java.io.{ByteArrayOutputStream, ObjectOutputStream}

import org.apache.hadoop.fs.Path
import org.apache.hadoop.io.BytesWritable
import org.apache.spark.rdd.RDD
import org.apache.spark.{SparkConf, SparkContext}
import org.slf4j.{Logger, LoggerFactory}

import com.yahoo.ml.caffe.Config
import com.yahoo.ml.caffe.crema.HadoopConf

object Binary2Sequence {
  val log: Logger = LoggerFactory.getLogger(this.getClass)

  /** -imageRoot <directory or Hadoop URI> -labelFile <"filename label" lines> -output <path>. */
  def main(args: Array[String]): Unit = {
    val sc = new SparkContext(new SparkConf())
    try {
      val conf = new Config(sc, args)
      if (conf.imageRoot == null || conf.imageRoot.length == 0 || conf.labelFile == null || conf.labelFile.length == 0)
        throw new IllegalArgumentException("Both -imageRoot and -labelFile must be defined")
      new Binary2Sequence(sc, conf).makeRDD().saveAsSequenceFile(conf.outputPath)
    } finally sc.stop()
  }
}

class Binary2Sequence(@transient sc: SparkContext, conf: Config) extends Serializable {
  private val hadoop = new HadoopConf(sc.hadoopConfiguration)

  def makeRDD(): RDD[(BytesWritable, BytesWritable)] = {
    val root = conf.imageRoot
    val labelFile = conf.labelFile
    val h = hadoop
    sc.textFile(labelFile).filter(_.trim.nonEmpty).mapPartitions { iter =>
      val fs = new Path(root).getFileSystem(h.value)
      iter.map { line =>
        val f = line.trim.split("\\s+")
        if (f.length != 2)
          throw new IllegalArgumentException(labelFile + ": \"" + line + "\": each line must be (filename label)")
        val aout = new ByteArrayOutputStream
        val oos = new ObjectOutputStream(aout)
        oos.writeObject((f(0), f(1)))
        oos.close()
        val in = fs.open(new Path(root + "/" + f(0)))
        val bytes = try in.readAllBytes() finally in.close()
        (new BytesWritable(aout.toByteArray), new BytesWritable(bytes))
      }
    }
  }
}
