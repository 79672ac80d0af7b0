// Feeders: a rank's partition handed to C once, in chunks through direct
// buffers (never a JNI call per row), then fed to a net's data layer one
// whole batch per call, wrapping around, as crema.spark's feeders do.
package com.yahoo.ml.caffe.crema

import java.nio.{ByteBuffer, ByteOrder, FloatBuffer, LongBuffer}
import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.{Files => JFiles, Path}

import scala.collection.mutable.ArrayBuffer

import org.apache.hadoop.conf.Configuration

private[caffe] abstract class Feeder extends AutoCloseable {
  def n: Int
  def batch: Int
  protected var handle = 0L
  protected var pos = 0L

  /** The first of the next count rows (wrapping around). */
  protected def take(count: Int): Long = {
    val s = pos
    pos = (pos + count) % n
    s
  }

  def seek(p: Long): Unit = pos = if (n > 0) p % n else 0

  /** Feeds `batches` batches (or count samples) to the layer; returns the first row fed. */
  def feed(net: Long, batches: Int, layer: String, count: Int = 0): Long

  def sampleIds(start: Long, count: Int): Array[String]

  override def close(): Unit = {
    Native.feederFree(handle)
    handle = 0
  }
}

private[caffe] object Chunks {
  val Bytes: Int = 16 << 20
  val Rows: Int = 8192

  def bytes(n: Int): ByteBuffer = ByteBuffer.allocateDirect(math.max(n, 1)).order(ByteOrder.nativeOrder())
  def longs(n: Int): LongBuffer = bytes(n * 8).asLongBuffer()
  def floats(n: Int): FloatBuffer = bytes(n * 4).asFloatBuffer()

  def toFloat(v: Any, what: => String): Float = v match {
    case null => throw new IllegalArgumentException(what + ": null")
    case x: Number => x.floatValue
    case s: String =>
      try s.trim.toFloat catch { case _: NumberFormatException => throw new IllegalArgumentException(what + ": \"" + s + "\" is not a number") }
    case b: java.lang.Boolean => if (b) 1f else 0f
    case other => throw new IllegalArgumentException(what + ": a " + other.getClass.getName + ", not a number")
  }

  def toBytes(v: Any, what: => String): Array[Byte] = v match {
    case a: Array[Byte] => a
    case s: String => s.getBytes(UTF_8)
    case r: org.apache.spark.sql.Row if r.schema != null && r.schema.fieldNames.contains("image") =>
      toBytes(r.getAs[Any]("image"), what)
    case s: Seq[_] => s.map(x => toFloat(x, what).toByte).toArray
    case null => throw new IllegalArgumentException(what + ": null")
    case other => throw new IllegalArgumentException(what + ": a " + other.getClass.getName + ", not bytes")
  }

  def toFloats(v: Any, what: => String): Array[Float] = v match {
    case s: Seq[_] => s.map(x => toFloat(x, what)).toArray
    case a: Array[_] => a.map(x => toFloat(x, what))
    case null => throw new IllegalArgumentException(what + ": null")
    case x => Array(toFloat(x, what))
  }
}

/** ImageDataFrame / SeqImageDataSource / custom ImageDataSource samples for a MemoryData layer. */
private[caffe] class ImageFeeder(spec: FeedSpec,
                                 rows: Iterator[(String, String, Int, Int, Int, Boolean, Array[Byte])]) extends Feeder {
  val batch: Int = spec.batch
  private val ids = new ArrayBuffer[String]()
  private var encoded = false
  private var c, h, w = 0
  val n: Int = load()

  private def load(): Int = {
    var data = Chunks.bytes(Chunks.Bytes)
    val lens = Chunks.longs(Chunks.Rows)
    val labels = Chunks.floats(Chunks.Rows)
    var count = 0
    def flush(): Unit = if (count > 0) {
      Native.imageFeederAdd(handle, data, data.position().toLong, lens, labels, count)
      data.clear(); lens.clear(); labels.clear()
      count = 0
    }
    for ((id, label, ch, ht, wd, enc, bytes) <- rows) {
      val name = "layer " + spec.layer + ": sample " + (if (id == null || id.isEmpty) "#" + ids.size else id)
      if (bytes == null) throw new IllegalArgumentException(name + ": no image data")
      if (label == null) throw new IllegalArgumentException(name + ": no label")
      val lab = Chunks.toFloat(label, name + ": label")
      if (handle == 0) {
        encoded = enc
        if (!enc) {
          c = if (ch > 0) ch else spec.channels
          h = if (ht > 0) ht else spec.height
          w = if (wd > 0) wd else spec.width
        }
        handle = Native.imageFeederOpen(encoded, c, h, w)
      }
      if (enc != encoded) throw new IllegalArgumentException(name + ": the partition mixes encoded and raw images")
      if (!enc) {
        val (cc, hh, ww) = (if (ch > 0) ch else spec.channels, if (ht > 0) ht else spec.height, if (wd > 0) wd else spec.width)
        if (cc != c || hh != h || ww != w)
          throw new IllegalArgumentException(name + ": a raw image of " + cc + " x " + hh + " x " + ww +
            ", the others are " + c + " x " + h + " x " + w + " (crema feeds raw images of one size)")
        if (bytes.length != c * h * w)
          throw new IllegalArgumentException(name + ": raw image has " + bytes.length + " bytes, channels x height x width is " + (c * h * w))
      }
      if (bytes.length > data.remaining()) {
        flush()
        if (bytes.length > data.capacity()) data = Chunks.bytes(bytes.length)
      }
      data.put(bytes)
      lens.put(bytes.length.toLong)
      labels.put(lab)
      ids += (if (id == null) "" else id)
      count += 1
      if (count == Chunks.Rows) flush()
    }
    flush()
    if (ids.isEmpty) throw new IllegalArgumentException("layer " + spec.layer + ": this rank's partition is empty")
    ids.size
  }

  def feed(net: Long, batches: Int, layer: String, count: Int = 0): Long = {
    val k = if (count > 0) count else batches * batch
    val start = take(k)
    val resize = spec.resize && spec.height > 0 && spec.width > 0
    Native.imageFeed(handle, net, if (layer != null) layer else spec.layer, start, k, spec.channels,
      if (resize) spec.height else 0, if (resize) spec.width else 0)
    start
  }

  def sampleIds(start: Long, count: Int): Array[String] = Array.tabulate(count)(i => ids(((start + i) % n).toInt))
}

/** A CoSData layer's samples: one column per top, converted as CaffeOnSpark's DataFrameSource did
 * (STRING parsed as a number, INT and FLOAT, INT_ARRAY and FLOAT_ARRAY, RAW_IMAGE bytes, encoded images). */
private[caffe] class CoSFeeder(spec: FeedSpec, rows: Iterator[(String, Array[Any])]) extends Feeder {
  val batch: Int = spec.batch
  private val ids = new ArrayBuffer[String]()
  private val tops = spec.topNames.length
  // column kinds for Native.cosFeederOpen: 0 floats, 1 raw bytes, 2 encoded
  private val kinds = spec.topTypes.map { t => if (t <= 4) 0 else if (t == 5) 1 else 2 }
  private val sizes = new Array[Long](tops)
  val n: Int = load()

  private def load(): Int = {
    val pending = new ArrayBuffer[(String, Array[Any])]()
    var bytes = 0L
    def flush(): Unit = if (pending.nonEmpty) {
      if (handle == 0) {
        for (t <- 0 until tops) sizes(t) = kinds(t) match {
          case 0 => Chunks.toFloats(pending(0)._2(t), what(pending(0)._1, t)).length
          case 1 => Chunks.toBytes(pending(0)._2(t), what(pending(0)._1, t)).length
          case _ => 0
        }
        handle = Native.cosFeederOpen(kinds, sizes)
      }
      for (t <- 0 until tops) {
        val k = pending.size
        kinds(t) match {
          case 0 =>
            val buf = Chunks.floats((sizes(t) * k).toInt)
            for ((id, v) <- pending) {
              val f = Chunks.toFloats(v(t), what(id, t))
              if (f.length != sizes(t))
                throw new IllegalArgumentException(what(id, t) + ": " + f.length + " values, the first sample has " + sizes(t))
              buf.put(f)
            }
            Native.cosFeederAdd(handle, t, buf, sizes(t) * k * 4, null, k)
          case kind =>
            val parts = pending.map { case (id, v) => Chunks.toBytes(v(t), what(id, t)) }
            if (kind == 1)
              for ((p, (id, _)) <- parts.zip(pending) if p.length != sizes(t))
                throw new IllegalArgumentException(what(id, t) + ": a raw image of " + p.length + " bytes, the first has " + sizes(t))
            val total = parts.map(_.length.toLong).sum
            if (total > Int.MaxValue) throw new IllegalArgumentException("layer " + spec.layer + ": a chunk of " + total + " bytes")
            val buf = Chunks.bytes(total.toInt)
            val lens = Chunks.longs(k)
            for (p <- parts) { buf.put(p); lens.put(p.length.toLong) }
            Native.cosFeederAdd(handle, t, buf, total, if (kind == 2) lens else null, k)
        }
      }
      pending.clear()
      bytes = 0
    }
    for ((id, values) <- rows) {
      if (values == null || values.length != tops)
        throw new IllegalArgumentException("layer " + spec.layer + ": sample " + id + " has " +
          (if (values == null) 0 else values.length) + " values for " + tops + " tops")
      pending += ((id, values))
      ids += (if (id == null) "" else id)
      bytes += values.map {
        case a: Array[Byte] => a.length.toLong
        case _ => 16L
      }.sum
      if (pending.size >= Chunks.Rows || bytes >= Chunks.Bytes) flush()
    }
    flush()
    if (ids.isEmpty) throw new IllegalArgumentException("layer " + spec.layer + ": this rank's partition is empty")
    ids.size
  }

  private def what(id: String, t: Int): String = "layer " + spec.layer + ": sample " + id + ", top " + spec.topNames(t)

  def feed(net: Long, batches: Int, layer: String, count: Int = 0): Long = {
    val k = if (count > 0) count else batches * batch
    val start = take(k)
    Native.cosFeed(handle, net, if (layer != null) layer else spec.layer, start, k)
    start
  }

  def sampleIds(start: Long, count: Int): Array[String] = Array.tabulate(count)(i => ids(((start + i) % n).toInt))
}

/** A shard of an LMDB (records rank, rank + size, ...) read by crema's Data layer with the layer's
 * transform_param, fed as floats; a Hadoop URI is copied to local disk first. */
private[caffe] class LmdbFeeder(spec: FeedSpec, rank: Int, size: Int, phase: Int, work: Path, hadoop: Configuration)
  extends Feeder {
  val batch: Int = spec.batch
  private val path = Files.fetchDir(spec.lmdbUri, hadoop, Work.cacheDir())
  private val total = Native.dbCount(path, "lmdb")
  val n: Int = (if (total > rank) (total - rank + size - 1) / size else 0).toInt
  if (n == 0)
    throw new IllegalArgumentException("LMDB " + spec.lmdbUri + ": rank " + rank + " of " + size + " has no records (" + total + " in all)")
  private val reader = work.resolve("reader_" + (if (phase == Native.TRAIN) "train" else "test") + ".prototxt")
  JFiles.write(reader, LmdbReader.text(path, batch, spec.transform).getBytes(UTF_8))
  handle = Native.lmdbFeederOpen(reader.toString, phase, rank, size)

  override def seek(p: Long): Unit = {
    // the reader only goes forward: whole batches are skipped
    val skip = ((p % n) / batch).toInt
    if (skip > 0) Native.lmdbFeed(handle, 0, null, skip, 0)
    pos = p % n
  }

  def feed(net: Long, batches: Int, layer: String, count: Int = 0): Long = {
    val k = if (count > 0) count else batches * batch
    Native.lmdbFeed(handle, net, if (layer != null) layer else spec.layer, batches, k)
    take(k)
  }

  // the records' keys, as CaffeOnSpark's LMDB source named its samples
  private lazy val keys: Array[String] =
    Native.dbKeys(path, "lmdb", rank, size).map(k => new String(k, UTF_8))

  def sampleIds(start: Long, count: Int): Array[String] =
    Array.tabulate(count)(i => keys(((start + i) % n).toInt))
}
