// How many tasks the Spark application can run at once now: what a barrier
// stage of clusterSize ranks needs. Spark keeps the count private to its own
// packages in Scala; the JVM's access rules let Java code read it.
package com.yahoo.ml.caffe.crema;

import org.apache.spark.SparkContext;

public final class SparkSlots {
    private SparkSlots() {
    }

    public static int available(SparkContext sc) {
        try {
            return sc.maxNumConcurrentTasks(sc.resourceProfileManager().defaultResourceProfile());
        } catch (RuntimeException | LinkageError e) {
            return sc.defaultParallelism();
        }
    }
}
