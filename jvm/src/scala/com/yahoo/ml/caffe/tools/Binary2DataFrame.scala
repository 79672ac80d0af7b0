// CaffeOnSpark's Binary2DataFrame: image files named by a label file as a
// DataFrame (SampleID, label, data).
package com.yahoo.ml.caffe.tools

import org.apache.hadoop.fs.Path
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.types._
import org.apache.spark.sql.{Row, SparkSession}
import org.apache.spark.storage.StorageLevel
import org.apache.spark.{SparkConf, SparkContext}
import org.slf4j.{Logger, LoggerFactory}

import com.yahoo.ml.caffe.Config
import com.yahoo.ml.caffe.crema.HadoopConf

object Binary2DataFrame {
  val log: Logger = LoggerFactory.getLogger(this.getClass)

  /** -imageRoot <directory or Hadoop URI> -labelFile <"filename label id" lines> -output <path>
   * [-outputFormat json|parquet]. */
  def main(args: Array[String]): Unit = {
    val sc = new SparkContext(new SparkConf())
    try {
      val conf = new Config(sc, args)
      if (conf.imageRoot == null || conf.imageRoot.length == 0 || conf.labelFile == null || conf.labelFile.length == 0)
        throw new IllegalArgumentException("Both -imageRoot and -labelFile must be defined")
      val schema = new StructType(Array(StructField("SampleID", StringType, false),
        StructField("label", IntegerType, false),
        StructField("data", BinaryType, false)))
      log.info("Schema:" + schema)
      val featureRDD = new Binary2DataFrame(sc, conf).makeRDD()
      val featureDF = SparkSession.builder().config(sc.getConf).getOrCreate()
        .createDataFrame(featureRDD, schema).persist(StorageLevel.DISK_ONLY)
      featureDF.write.format(conf.outputFormat).save(conf.outputPath)
    } finally sc.stop()
  }
}

class Binary2DataFrame(@transient sc: SparkContext, conf: Config) extends Serializable {
  private val hadoop = new HadoopConf(sc.hadoopConfiguration)

  /** One Row(id, label, bytes) per line "filename label id"; a line of another shape, or a file that
   * cannot be read, fails the job naming the line or file. */
  def makeRDD(): RDD[Row] = {
    val root = conf.imageRoot
    val labelFile = conf.labelFile
    val h = hadoop
    sc.textFile(labelFile).filter(_.trim.nonEmpty).mapPartitions { iter =>
      val fs = new Path(root).getFileSystem(h.value)
      iter.map { line =>
        val f = line.trim.split("\\s+")
        if (f.length != 3)
          throw new IllegalArgumentException(labelFile + ": \"" + line + "\": each line must be (filename label id)")
        val label = try f(1).toInt catch {
          case _: NumberFormatException => throw new IllegalArgumentException(labelFile + ": \"" + line + "\": the label is not an integer")
        }
        val in = fs.open(new Path(root + "/" + f(0)))
        val bytes = try in.readAllBytes() finally in.close()
        Row(f(2), label, bytes)
      }
    }
  }
}
