// The JVM front end's checks that fit in one Spark application (run by
// tests/jvm/test_jvm.py): bad input ends in a Java exception naming the
// cause and the job ends; CaffeOnSpark's conversion tools and sources; a
// short CoSData (DataFrameSource) training. Prints "ok ..."/"FAIL ..." lines.
//
//   Checks WORKDIR CLOSED_PORT
import java.nio.file.{Files, Paths}

import com.yahoo.ml.caffe.crema.CremaException
import com.yahoo.ml.caffe.tools.{Binary2DataFrame, Binary2Sequence}
import com.yahoo.ml.caffe.{CaffeOnSpark, Config, DataSource, LMDB, SeqImageDataSource}
import org.apache.spark.{SparkConf, SparkContext}

object Checks {
  var fails = 0

  def ok(cond: Boolean, what: String, detail: String = ""): Unit = {
    if (!cond) fails += 1
    println((if (cond) "ok   " else "FAIL ") + what + (if (detail.nonEmpty) " (" + detail + ")" else ""))
  }

  /** Runs body, which must throw; returns (exception, seconds). */
  def failure(body: => Any): (Throwable, Double) = {
    val t0 = System.nanoTime()
    try {
      body
      (null, (System.nanoTime() - t0) / 1e9)
    } catch {
      case e: Throwable => (e, (System.nanoTime() - t0) / 1e9)
    }
  }

  def chain(e: Throwable): String = {
    val b = new StringBuilder
    var t = e
    while (t != null) {
      b.append(t.getClass.getName).append(": ").append(t.getMessage).append(" | ")
      t = t.getCause
    }
    b.toString
  }

  def main(args: Array[String]): Unit = {
    val w = args(0)
    val closed = args(1)
    val sc = new SparkContext(new SparkConf())
    val cos = new CaffeOnSpark(sc)

    // ---- bad input ----
    {
      val conf = new Config(sc, Array("-conf", w + "/solver_noclass.prototxt", "-train", "-clusterSize", "2",
        "-model", "file:" + w + "/checks/noclass.caffemodel"))
      val (e, s) = failure(DataSource.getSource(conf, true))
      ok(e.isInstanceOf[ClassNotFoundException] && e.getMessage.contains("com.example.NoSuchSource"),
        "a source_class that is not on the classpath: ClassNotFoundException naming it", f"$s%.1f s: " + chain(e))
    }
    {
      val (e, s) = failure(new Config(sc, Array("-conf", w + "/solver_badnet.prototxt", "-train")))
      ok(e.isInstanceOf[CremaException] && e.getMessage.contains("net_bad.prototxt:3"),
        "a bad net prototxt: CremaException naming the file and line", f"$s%.1f s: " + chain(e))
    }
    {
      val (e, s) = failure(new Config(sc, Array("-conf", w + "/no_such_solver.prototxt", "-train")))
      ok(e.isInstanceOf[IllegalArgumentException] && e.getMessage.contains("no_such_solver.prototxt"),
        "a missing solver prototxt: IllegalArgumentException naming it", f"$s%.1f s: " + chain(e))
    }
    {
      val conf = new Config(sc, Array("-conf", w + "/solver_lmdb.prototxt", "-train", "-clusterSize", "2",
        "-model", "hdfs://127.0.0.1:" + closed + "/unreachable/lenet.caffemodel"))
      val (e, s) = failure(cos.train(DataSource.getSource(conf, true)))
      ok(e != null && e.getMessage.contains("127.0.0.1:" + closed) && s < 120,
        "an unreachable HDFS: an exception naming it, no job started", f"$s%.1f s: " + chain(e))
    }
    {
      val conf = new Config(sc, Array("-conf", w + "/solver_lmdb.prototxt", "-train", "-clusterSize", "3",
        "-model", "file:" + w + "/checks/three.caffemodel"))
      val (e, s) = failure(cos.train(DataSource.getSource(conf, true)))
      ok(e.isInstanceOf[IllegalArgumentException] && e.getMessage.contains("clusterSize 3 is larger than the 2 task slots"),
        "clusterSize 3 on local[2]: IllegalArgumentException at once", f"$s%.1f s: " + chain(e))
    }
    {
      // one raw image of the wrong size in the middle of the training data
      val conf = new Config(sc, Array("-conf", w + "/solver_corrupt.prototxt", "-train", "-clusterSize", "2",
        "-model", "file:" + w + "/checks/corrupt.caffemodel"))
      val (e, s) = failure(cos.train(DataSource.getSource(conf, true)))
      ok(e != null && chain(e).contains("sample 77") && chain(e).contains("raw image has 100 bytes"),
        "a corrupt sample: the Spark job ends with the sample named", f"$s%.1f s: " + chain(e).take(400))
    }
    ok(sc.parallelize(1 to 4, 2).count() == 4, "the application still runs jobs after the failures")

    // ---- CaffeOnSpark's conversion tools and sources ----
    {
      val conf = new Config(sc, Array("-conf", w + "/solver_lmdb.prototxt", "-clusterSize", "2"))
      val src = DataSource.getSource(conf, false).asInstanceOf[LMDB]
      val rows = src.makeRDD(sc).collect()
      val first = rows.find(_._1 == "0").get
      println("LMDB.makeRDD: " + rows.length + " rows; record 0 label " + first._2 + " " + first._3 + "x" + first._4 +
        "x" + first._5 + " pixel sum " + first._7.map(_ & 0xff).sum)
    }
    {
      val conf = new Config(sc, Array("-conf", w + "/solver_seq.prototxt", "-imageRoot", "file:" + w + "/imgs",
        "-labelFile", w + "/labels2.txt", "-output", "file:" + w + "/png_seq", "-clusterSize", "1"))
      new Binary2Sequence(sc, conf).makeRDD().saveAsSequenceFile(conf.outputPath)
      val rows = DataSource.getSource(conf, true).asInstanceOf[SeqImageDataSource].makeRDD(sc).collect().sortBy(_._1)
      val same = rows.forall(r => java.util.Arrays.equals(r._7, Files.readAllBytes(Paths.get(w + "/imgs/" + r._1))))
      ok(rows.length == 3 && rows.forall(_._6) && same && rows.map(_._2).mkString(",") == args(2),
        "Binary2Sequence's files read back by SeqImageDataSource (ids, labels, encoded bytes)",
        rows.map(r => r._1 + ":" + r._2).mkString(" "))
    }
    {
      val conf = new Config(sc, Array("-imageRoot", "file:" + w + "/imgs", "-labelFile", w + "/labels3.txt"))
      val rows = new Binary2DataFrame(sc, conf).makeRDD().collect().sortBy(_.getString(0))
      ok(rows.length == 3 && rows.map(_.getInt(1)).mkString(",") == args(2) &&
        java.util.Arrays.equals(rows(2).getAs[Array[Byte]](2), Files.readAllBytes(Paths.get(w + "/imgs/2.png"))),
        "Binary2DataFrame: (SampleID, label, data) rows", rows.map(_.getString(0)).mkString(" "))
    }

    // ---- the CoSData layer's DataFrameSource, trained briefly ----
    {
      val conf = new Config(sc, Array("-conf", w + "/solver_cos.prototxt", "-train", "-clusterSize", "2",
        "-features", "ip2", "-label", "label", "-model", "file:" + w + "/checks/cos/lenet.caffemodel"))
      cos.train(DataSource.getSource(conf, true))
      val feats = cos.features(DataSource.getSource(conf, false))
      val acc = feats.collect().map { r =>
        val ip2 = r.getSeq[Float](1)
        if (ip2.indexOf(ip2.max) == r.getSeq[Float](2).head.toInt) 1.0 else 0.0
      }
      ok(acc.length == 10000 && acc.sum / acc.length > 0.5, "DataFrameSource (CoSData): trained, features of every test sample",
        acc.length + " rows, argmax accuracy " + (acc.sum / acc.length))
    }
    sc.stop()
    println("Checks: " + fails + " failed")
    if (fails > 0) sys.exit(1)
  }
}
