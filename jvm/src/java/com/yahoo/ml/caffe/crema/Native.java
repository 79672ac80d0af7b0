// crema's C API on the JVM (libcrema_jni.so): static methods over opaque
// handles (longs), each throwing CremaException when the C call fails. The
// library is loaded from java.library.path, else from inside the jar.
package com.yahoo.ml.caffe.crema;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

public final class Native {
    public static final int TRAIN = 0;
    public static final int TEST = 1;
    /** Where `make jar` puts the library inside the jar. */
    public static final String RESOURCE = "/com/yahoo/ml/caffe/crema/native/libcrema_jni.so";

    private static boolean loaded;

    private Native() {
    }

    /** Loads libcrema_jni once per JVM: CREMA_JNI_LIBRARY (a path) when set,
     * then java.library.path, then the copy inside the jar. */
    public static synchronized void load() {
        if (loaded)
            return;
        StringBuilder tried = new StringBuilder();
        String explicit = System.getenv("CREMA_JNI_LIBRARY");
        if (explicit != null && !explicit.isEmpty()) {
            System.load(new File(explicit).getAbsolutePath());
            loaded = true;
            return;
        }
        try {
            System.loadLibrary("crema_jni");
            loaded = true;
            return;
        } catch (UnsatisfiedLinkError e) {
            tried.append("java.library.path (").append(System.getProperty("java.library.path")).append("): ")
                 .append(e.getMessage());
        }
        try (InputStream in = Native.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                tried.append("; the jar has no ").append(RESOURCE);
            } else {
                Path dir = Files.createTempDirectory("crema-jni-");
                Path lib = dir.resolve("libcrema_jni.so");
                Files.copy(in, lib, StandardCopyOption.REPLACE_EXISTING);
                lib.toFile().deleteOnExit();
                dir.toFile().deleteOnExit();
                System.load(lib.toString());
                loaded = true;
                return;
            }
        } catch (IOException | UnsatisfiedLinkError e) {
            tried.append("; from the jar: ").append(e.getMessage());
        }
        throw new UnsatisfiedLinkError("crema: cannot load libcrema_jni: " + tried);
    }

    static {
        load();
    }

    public static native String version();
    public static native String statusName(int status);

    /** A text-format caffe.proto message ("NetParameter", "SolverParameter", ...) in binary (upgraded as Caffe reads it). */
    public static native byte[] textToBinary(String message, byte[] text, String name);
    public static native byte[] binaryToText(String message, byte[] data);
    public static native long dbCount(String path, String backend);
    /** The keys of records rank, rank + size, ... of a database, in its order (bytes: keys need not be UTF-8). */
    public static native byte[][] dbKeys(String path, String backend, int rank, int size);

    public static native long netOpen(String prototxt, String weights, int phase);
    public static native void netFree(long net);
    public static native void netSaveWeights(long net, String path);
    public static native void netLoadWeights(long net, String path);
    public static native float netForward(long net);
    public static native String[] netOutputs(long net);
    public static native int[] blobShape(long net, String blob);
    public static native void blobData(long net, String blob, float[] dst);
    public static native void netCopyParams(long src, long dst);
    public static native void netSetDataShard(long net, String layer, int rank, int size);

    public static native long solverOpen(String prototxt, boolean log);
    public static native void solverFree(long solver);
    public static native void solverStep(long solver, int iters);
    public static native int solverIter(long solver);
    /** The train net, owned by the solver (never netFree it). */
    public static native long solverNet(long solver);
    /** Restores a state; with weights non-null, the weights come from that file. */
    public static native void solverRestore(long solver, String state, String weights);
    public static native void solverSnapshotTo(long solver, String prefix);
    public static native void solverSetDist(long solver, long dist);

    public static native long distOpen(int rank, int size, String address, String secret, int timeoutMs);
    public static native void distFree(long dist);
    public static native void distAllreduce(long dist, float[] buf);
    public static native void distBarrier(long dist);

    public static native void feederFree(long feeder);
    public static native int feederCount(long feeder);
    public static native long imageFeederOpen(boolean encoded, int channels, int height, int width);
    public static native void imageFeederAdd(long feeder, ByteBuffer data, long bytes, LongBuffer lengths,
                                             FloatBuffer labels, int n);
    public static native void imageFeed(long feeder, long net, String layer, long start, int count, int channels,
                                        int height, int width);
    /** kinds: 0 floats, 1 raw image bytes, 2 encoded images; sizes: floats or bytes per sample. */
    public static native long cosFeederOpen(int[] kinds, long[] sizes);
    public static native void cosFeederAdd(long feeder, int column, java.nio.Buffer data, long bytes,
                                           LongBuffer lengths, int n);
    public static native void cosFeed(long feeder, long net, String layer, long start, int count);
    public static native long lmdbFeederOpen(String readerPrototxt, int phase, int rank, int size);
    public static native void lmdbFeed(long feeder, long net, String layer, int batches, int count);
}
