#!/bin/sh
# Builds BUILD/jvm/crema.jar: caffe.Caffe (protoc --java_out on our
# caffe.proto), the Java half of the JNI binding, the Scala API
# (com.yahoo.ml.caffe) compiled by the Scala 2.12 compiler inside pyspark's
# wheel against Spark's own jars, protobuf-java's classes, and
# libcrema_jni.so. No network build tool: java, javac, jar and scalac only.
# Usage: sh jvm/build.sh BUILD (BUILD/lib/libcrema_jni.so must exist).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-build}" && pwd)
OUT=$BUILD/jvm
PY=${PYTHON:-python3}
PROTOBUF_JAR=${PROTOBUF_JAR:-/usr/share/java/protobuf.jar}
LIB=$BUILD/lib/libcrema_jni.so

die() { echo "jvm/build.sh: $*" >&2; exit 1; }
command -v javac >/dev/null 2>&1 || die "javac is missing (scripts/deps.sh installs openjdk-17-jdk-headless)"
command -v protoc >/dev/null 2>&1 || die "protoc is missing (scripts/deps.sh installs protobuf-compiler)"
[ -f "$PROTOBUF_JAR" ] || die "$PROTOBUF_JAR is missing (scripts/deps.sh installs libprotobuf-java)"
[ -f "$LIB" ] || die "$LIB is missing: build the C library first (make)"
SPARK_JARS=${SPARK_JARS:-$("$PY" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))' 2>/dev/null || true)}
[ -d "$SPARK_JARS" ] || die "Spark's jars not found: pip install pyspark==3.5.7 (scripts/deps.sh), or set SPARK_JARS"
SCALAC_CP=$(ls "$SPARK_JARS"/scala-compiler-2.12.*.jar "$SPARK_JARS"/scala-library-2.12.*.jar \
                "$SPARK_JARS"/scala-reflect-2.12.*.jar | tr '\n' ':')
SPARK_CP=$(ls "$SPARK_JARS"/*.jar | tr '\n' ':')

# Rebuild only when an input changed.
stamp=$( (cd "$ROOT" && find jvm/src jvm/build.sh src/proto/caffe.proto -type f | sort | xargs cat; \
          cat "$LIB"; echo "$SPARK_JARS $PROTOBUF_JAR") | cksum)
if [ -f "$OUT/crema.jar" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "jvm: $OUT/crema.jar is up to date"
  exit 0
fi
rm -rf "$OUT"
mkdir -p "$OUT/gen" "$OUT/classes" "$OUT/proto"

# caffe.Caffe: the schema without protobuf-c's options (a C generator's).
grep -v -e 'import "protobuf-c/' -e 'pb_c_msg' "$ROOT/src/proto/caffe.proto" > "$OUT/proto/caffe.proto"
protoc --java_out="$OUT/gen" -I"$OUT/proto" "$OUT/proto/caffe.proto"

echo "jvm: javac"
javac -nowarn --release 8 -encoding UTF-8 -d "$OUT/classes" -cp "$PROTOBUF_JAR:$SPARK_CP" \
  $(find "$OUT/gen" "$ROOT/jvm/src/java" -name '*.java') 2>&1 | grep -v '^Note:' >&2 || true
[ -f "$OUT/classes/caffe/Caffe.class" ] && [ -f "$OUT/classes/com/yahoo/ml/caffe/crema/Native.class" ] || die "javac failed"

echo "jvm: scalac"
java -Xss8m -Xmx1g -cp "$SCALAC_CP" scala.tools.nsc.Main -deprecation -feature -nowarn -target:jvm-1.8 \
  -d "$OUT/classes" -cp "$OUT/classes:$PROTOBUF_JAR:$SPARK_CP" \
  $(find "$ROOT/jvm/src/scala" -name '*.scala') || die "scalac failed"

# One jar to hand to spark-submit: protobuf-java's classes and the native
# library inside.
(cd "$OUT/classes" && jar xf "$PROTOBUF_JAR" com && rm -rf META-INF)
mkdir -p "$OUT/classes/com/yahoo/ml/caffe/crema/native"
cp "$LIB" "$OUT/classes/com/yahoo/ml/caffe/crema/native/libcrema_jni.so"
jar cf "$OUT/crema.jar" -C "$OUT/classes" .
echo "$stamp" > "$OUT/stamp"
echo "jvm: built $OUT/crema.jar"
