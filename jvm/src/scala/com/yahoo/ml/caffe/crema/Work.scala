// Where a task keeps its files on the executor: under Spark's own
// per-application directory (SparkFiles' root), removed with the task; and
// a cache of files copied from Hadoop file systems, shared by the tasks of
// one executor.
package com.yahoo.ml.caffe.crema

import java.io.IOException
import java.nio.file.{FileVisitResult, Files => JFiles, Path, Paths, SimpleFileVisitor}
import java.nio.file.attribute.BasicFileAttributes

import org.apache.spark.{SparkFiles, TaskContext}

private[caffe] object Work {
  def root(): Path = {
    val r = Paths.get(SparkFiles.getRootDirectory())
    JFiles.createDirectories(r)
    r
  }

  def cacheDir(): Path = {
    val d = root().resolve("crema-cache")
    JFiles.createDirectories(d)
    d
  }

  /** A new directory for this task, deleted when the task completes. */
  def taskDir(prefix: String): Path = {
    val d = JFiles.createTempDirectory(root(), "crema-" + prefix + "-")
    val ctx = TaskContext.get()
    if (ctx != null) ctx.addTaskCompletionListener[Unit](_ => deleteTree(d))
    d
  }

  def deleteTree(d: Path): Unit =
    try {
      if (JFiles.exists(d))
        JFiles.walkFileTree(d, new SimpleFileVisitor[Path] {
          override def visitFile(f: Path, a: BasicFileAttributes): FileVisitResult = {
            JFiles.deleteIfExists(f); FileVisitResult.CONTINUE
          }
          override def postVisitDirectory(dir: Path, e: IOException): FileVisitResult = {
            JFiles.deleteIfExists(dir); FileVisitResult.CONTINUE
          }
        })
    } catch { case _: IOException => }
}
