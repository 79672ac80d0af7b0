// Paths with a Hadoop URI, read and written by the JVM that needs them:
// file: through java.nio, every other scheme (hdfs:, webhdfs:, ...) through
// Hadoop's FileSystem. Writes go to a temporary name that is then renamed,
// so a kill mid-write leaves what was there before whole.
package com.yahoo.ml.caffe.crema

import java.io.{IOException, InputStream, ObjectInputStream, ObjectOutputStream, OutputStream}
import java.nio.file.{Files => JFiles, Path => JPath, Paths, StandardCopyOption}
import java.security.MessageDigest
import java.util.UUID

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.fs.{FileSystem, Path}

/** A Hadoop Configuration that travels to executors (the driver's, with spark.hadoop.* in it). */
private[caffe] class HadoopConf(@transient var value: Configuration) extends Serializable {
  private def writeObject(out: ObjectOutputStream): Unit = {
    out.defaultWriteObject()
    value.write(out)
  }

  private def readObject(in: ObjectInputStream): Unit = {
    in.defaultReadObject()
    value = new Configuration(false)
    value.readFields(in)
  }
}

private[caffe] object FileUris {
  /** A file: URI or plain path as a local absolute path; null for any other scheme. */
  def localPath(uri: String): String = {
    if (uri == null) return null
    if (uri.startsWith("file://")) {
      val rest = uri.substring("file://".length)
      return if (rest.isEmpty) "/" else rest
    }
    if (uri.startsWith("file:")) return Paths.get(uri.substring("file:".length)).toAbsolutePath.toString
    if (uri.matches("^[A-Za-z][A-Za-z0-9+.-]*:.*")) return null
    Paths.get(uri).toAbsolutePath.toString
  }

  def isLocal(uri: String): Boolean = localPath(uri) != null

  /** The directory part of a URI or path (no trailing slash). */
  def parent(uri: String): String = {
    val u = uri.replaceAll("/+$", "")
    val i = u.lastIndexOf('/')
    if (i < 0) "." else if (i == 0 || u.substring(0, i).endsWith(":") || u.substring(0, i).endsWith(":/")) u.substring(0, i + 1)
    else u.substring(0, i)
  }

  def name(uri: String): String = {
    val u = uri.replaceAll("/+$", "")
    u.substring(u.lastIndexOf('/') + 1)
  }

  def child(dir: String, name: String): String = if (dir.endsWith("/")) dir + name else dir + "/" + name
}

private[caffe] object Files {
  import FileUris._

  private def fs(uri: String, conf: Configuration): FileSystem = new Path(uri).getFileSystem(conf)

  def exists(uri: String, conf: Configuration): Boolean = {
    val l = localPath(uri)
    if (l != null) JFiles.exists(Paths.get(l)) else fs(uri, conf).exists(new Path(uri))
  }

  def mkdirs(uri: String, conf: Configuration): Unit = {
    val l = localPath(uri)
    if (l != null) JFiles.createDirectories(Paths.get(l))
    else if (!fs(uri, conf).mkdirs(new Path(uri))) throw new IOException(uri + ": cannot create the directory")
  }

  def delete(uri: String, conf: Configuration): Unit = {
    val l = localPath(uri)
    if (l != null) JFiles.deleteIfExists(Paths.get(l))
    else fs(uri, conf).delete(new Path(uri), false)
  }

  /** (name, length) of each file in a directory; empty when it does not exist. */
  def list(dir: String, conf: Configuration): Seq[(String, Long)] = {
    val l = localPath(dir)
    if (l != null) {
      val d = Paths.get(l)
      if (!JFiles.isDirectory(d)) return Seq()
      val s = JFiles.list(d)
      try {
        val it = s.iterator()
        val out = Seq.newBuilder[(String, Long)]
        while (it.hasNext) {
          val p = it.next()
          if (JFiles.isRegularFile(p)) out += ((p.getFileName.toString, JFiles.size(p)))
        }
        out.result()
      } finally s.close()
    } else {
      val f = fs(dir, conf)
      val p = new Path(dir)
      if (!f.exists(p)) return Seq()
      f.listStatus(p).toSeq.filter(_.isFile).map(st => (st.getPath.getName, st.getLen))
    }
  }

  def open(uri: String, conf: Configuration): InputStream = {
    val l = localPath(uri)
    if (l != null) JFiles.newInputStream(Paths.get(l)) else fs(uri, conf).open(new Path(uri))
  }

  def readBytes(uri: String, conf: Configuration): Array[Byte] = {
    val in = open(uri, conf)
    try in.readAllBytes() finally in.close()
  }

  /** Writes uri through a temporary name beside it, renamed when `write`
   * has returned: a reader never sees a partial file. */
  def writeAtomic(uri: String, conf: Configuration)(write: OutputStream => Unit): Unit = {
    val tmpName = "." + name(uri) + ".crema-tmp-" + UUID.randomUUID().toString.substring(0, 8)
    val tmp = child(parent(uri), tmpName)
    val l = localPath(uri)
    if (l != null) {
      val dst = Paths.get(l)
      if (dst.getParent != null) JFiles.createDirectories(dst.getParent)
      val t = Paths.get(localPath(tmp))
      try {
        val out = JFiles.newOutputStream(t)
        try write(out) finally out.close()
        JFiles.move(t, dst, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING)
      } finally JFiles.deleteIfExists(t)
    } else {
      val f = fs(uri, conf)
      val dst = new Path(uri)
      val t = new Path(tmp)
      try {
        val out = f.create(t, true)
        try write(out) finally out.close()
        // HDFS's rename never replaces: the old file goes first
        if (f.exists(dst) && !f.delete(dst, false)) throw new IOException(uri + ": cannot replace the old file")
        if (!f.rename(t, dst)) throw new IOException("cannot rename " + tmp + " to " + uri)
      } finally {
        try { if (f.exists(t)) f.delete(t, false) } catch { case _: IOException => }
      }
    }
  }

  /** Copies a local file to uri (atomically); `midway` runs after half of it is written (a test hook). */
  def upload(local: JPath, uri: String, conf: Configuration, midway: () => Unit = null): Unit =
    writeAtomic(uri, conf) { out =>
      val bytes = JFiles.readAllBytes(local)
      if (midway != null) {
        out.write(bytes, 0, bytes.length / 2)
        out.flush()
        midway()
        out.write(bytes, bytes.length / 2, bytes.length - bytes.length / 2)
      } else out.write(bytes)
    }

  private def copyInto(in: InputStream, dst: JPath): Unit = {
    val tmp = dst.resolveSibling("." + dst.getFileName + ".crema-tmp-" + UUID.randomUUID().toString.substring(0, 8))
    try {
      JFiles.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING)
      JFiles.move(tmp, dst, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING)
    } finally JFiles.deleteIfExists(tmp)
  }

  private def hex(s: String): String =
    MessageDigest.getInstance("SHA-256").digest(s.getBytes("UTF-8")).take(10).map("%02x".format(_)).mkString

  /** uri as a local file: itself when local, else copied into cacheDir
   * (one copy per file version, shared by the tasks of this host). */
  def fetch(uri: String, conf: Configuration, cacheDir: JPath): String = {
    val l = localPath(uri)
    if (l != null) {
      if (!JFiles.isRegularFile(Paths.get(l))) throw new IOException(uri + ": no such file")
      return l
    }
    val f = fs(uri, conf)
    val st = f.getFileStatus(new Path(uri))
    if (!st.isFile) throw new IOException(uri + ": not a file")
    val dir = cacheDir.resolve(hex(uri + "\u0000" + st.getLen + "\u0000" + st.getModificationTime))
    JFiles.createDirectories(dir)
    val dst = dir.resolve(name(uri))
    if (!JFiles.exists(dst) || JFiles.size(dst) != st.getLen) {
      val in = f.open(st.getPath)
      try copyInto(in, dst) finally in.close()
    }
    dst.toString
  }

  /** A directory (an LMDB) as a local directory: itself when local, else its
   * files copied into cacheDir first, as CaffeOnSpark copied LMDBs. */
  def fetchDir(uri: String, conf: Configuration, cacheDir: JPath): String = {
    val l = localPath(uri)
    if (l != null) {
      if (!JFiles.isDirectory(Paths.get(l))) throw new IOException(uri + ": no such directory")
      return l
    }
    val f = fs(uri, conf)
    val root = new Path(uri)
    if (!f.getFileStatus(root).isDirectory) throw new IOException(uri + ": not a directory")
    val files = f.listStatus(root).filter(_.isFile)
    val key = files.map(s => s.getPath.getName + ":" + s.getLen + ":" + s.getModificationTime).sorted.mkString(",")
    val dir = cacheDir.resolve(hex(uri + "\u0000" + key)).resolve(name(uri))
    val done = dir.resolveSibling(".complete")
    if (!JFiles.exists(done)) {
      JFiles.createDirectories(dir)
      for (s <- files) {
        val dst = dir.resolve(s.getPath.getName)
        if (!JFiles.exists(dst) || JFiles.size(dst) != s.getLen) {
          val in = f.open(s.getPath)
          try copyInto(in, dst) finally in.close()
        }
      }
      JFiles.write(done, Array[Byte]())
    }
    dir.toString
  }
}
