// Two things of Spark's own that crema needs and Spark keeps private to its
// packages in Scala (the JVM's access rules let Java code use them): how many
// tasks the application can run at once (what a barrier stage of
// clusterSize ranks needs), and the timer thread of BarrierTaskContext.
package com.yahoo.ml.caffe.crema;

import java.util.Timer;

import org.apache.spark.SparkContext;

public final class SparkInternals {
    private SparkInternals() {
    }

    public static int availableSlots(SparkContext sc) {
        try {
            return sc.maxNumConcurrentTasks(sc.resourceProfileManager().defaultResourceProfile());
        } catch (RuntimeException | LinkageError e) {
            return sc.defaultParallelism();
        }
    }

    private static boolean releasing;

    /** In local mode the barrier tasks run in the driver's JVM, and Spark 3.5's
     * BarrierTaskContext starts a Timer whose thread is not a daemon: the JVM
     * would never exit after main returns. A daemon thread waits for main to end,
     * then cancels that timer (no barrier stage can run after main). */
    public static synchronized void releaseBarrierTimerAfterMain() {
        if (releasing)
            return;
        Thread main = null;
        for (Thread t : Thread.getAllStackTraces().keySet())
            if ("main".equals(t.getName()) && t.getThreadGroup() != null && "main".equals(t.getThreadGroup().getName()))
                main = t;
        if (main == null)
            return;
        final Thread waitFor = main;
        Thread t = new Thread(() -> {
            try {
                waitFor.join();
                Timer timer = org.apache.spark.BarrierTaskContext$.MODULE$.org$apache$spark$BarrierTaskContext$$timer();
                timer.cancel();
            } catch (InterruptedException | RuntimeException | LinkageError e) {
                // another Spark version: nothing to release
            }
        }, "crema-barrier-timer-release");
        t.setDaemon(true);
        t.start();
        releasing = true;
    }
}
