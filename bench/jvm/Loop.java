// The JVM rank's training loop without Spark (bench/bench_spark_jvm.sh):
// a batch of an LMDB fed through JNI into the MemoryData layer, one solver
// step, as the task of com.yahoo.ml.caffe does.
//   java -cp crema.jar:. Loop SOLVER READER ITERS
import com.yahoo.ml.caffe.crema.Native;

public class Loop {
    public static void main(String[] a) {
        int iters = Integer.parseInt(a[2]);
        long s = Native.solverOpen(a[0], false);
        long net = Native.solverNet(s);
        long f = Native.lmdbFeederOpen(a[1], Native.TRAIN, 0, 1);
        for (int i = 0; i < 10; i++) {
            Native.lmdbFeed(f, net, "data", 1, 64);
            Native.solverStep(s, 1);
        }
        long t0 = System.nanoTime();
        for (int i = 0; i < iters; i++) {
            Native.lmdbFeed(f, net, "data", 1, 64);
            Native.solverStep(s, 1);
        }
        System.out.printf("loop: %d images in %.2f s%n", iters * 64L, (System.nanoTime() - t0) / 1e9);
        Native.feederFree(f);
        Native.solverFree(s);
    }
}
