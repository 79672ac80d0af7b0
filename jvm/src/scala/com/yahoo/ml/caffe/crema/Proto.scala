// Caffe's prototxts on the JVM: read by crema's one text reader (through
// JNI) into caffe.Caffe's protobuf-java messages, and printed back by it.
package com.yahoo.ml.caffe.crema

import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.{Files => JFiles, Paths}

import caffe.Caffe._
import com.google.protobuf.Message

private[caffe] object Proto {

  def solverFromText(text: String, name: String): SolverParameter =
    SolverParameter.parseFrom(Native.textToBinary("SolverParameter", text.getBytes(UTF_8), name))

  def netFromText(text: String, name: String): NetParameter =
    NetParameter.parseFrom(Native.textToBinary("NetParameter", text.getBytes(UTF_8), name))

  /** A message in the text format, printed by crema. */
  def toText(msg: Message): String =
    new String(Native.binaryToText(msg.getDescriptorForType.getName, msg.toByteArray), UTF_8)

  /** A local file as text ("file:" URIs accepted); the name in messages. */
  def readLocal(path: String, what: String): String = {
    val local = FileUris.localPath(path)
    if (local == null)
      throw new IllegalArgumentException(what + " " + path + ": must be a local file (a path or file: URI)")
    val p = Paths.get(local)
    if (!JFiles.isRegularFile(p)) throw new IllegalArgumentException(what + " " + path + ": no such file")
    new String(JFiles.readAllBytes(p), UTF_8)
  }

  /** The solver prototxt and its net (from `net:`, resolved against the
   * working directory as Caffe does, then against the solver's directory;
   * or inline `net_param`), as messages and as text. */
  def readSolverAndNet(solverPath: String): (SolverParameter, String, NetParameter, String) = {
    val solverText = readLocal(solverPath, "-conf")
    val sp = solverFromText(solverText, solverPath)
    if (sp.hasNetParam) {
      val np = sp.getNetParam
      return (sp, solverText, np, toText(np))
    }
    val net = if (sp.hasNet) sp.getNet else if (sp.hasTrainNet) sp.getTrainNet else ""
    if (net.isEmpty)
      throw new IllegalArgumentException("-conf " + solverPath + ": the solver names no net (give `net:` or `net_param`)")
    var local = FileUris.localPath(net)
    if (local == null)
      throw new IllegalArgumentException("-conf " + solverPath + ": net " + net + " must be a local file")
    if (!JFiles.isRegularFile(Paths.get(local))) {
      val solverDir = Paths.get(FileUris.localPath(solverPath)).toAbsolutePath.getParent
      val alt = solverDir.resolve(net)
      if (JFiles.isRegularFile(alt)) local = alt.toString
      else throw new IllegalArgumentException("-conf " + solverPath + ": the solver's net " + net +
        " does not exist (looked in the working directory and in " + solverDir + ")")
    }
    val netText = new String(JFiles.readAllBytes(Paths.get(local)), UTF_8)
    (sp, solverText, netFromText(netText, local), netText)
  }
}
