"""CaffeOnSpark's command line on PySpark:

    spark-submit python/crema/spark/main.py -conf solver.prototxt -train -model file:/tmp/m.caffemodel ...
    python -m crema.spark -conf ... -train ... [--master local-cluster[2,1,2048]]

-train trains (then -features/-test run on the trained model, as in
CaffeOnSpark); -test prints the output means and writes them as JSON to
-output (to <output>_test with -features); -features writes a DataFrame in
-outputFormat (json or parquet) to -output."""
import json
import os
import sys


def _session(master):
    from pyspark.sql import SparkSession
    b = SparkSession.builder.appName("crema.spark")
    if master:
        b = b.master(master)
    from crema.spark.cos import is_local_master  # main.py also runs as a script (spark-submit)
    if is_local_master(master) and not os.environ.get("PYSPARK_PYTHON"):
        # Spark starts the workers' Python from PYSPARK_PYTHON, else
        # `python3` from the PATH, which may lack crema (a venv's package):
        # on this machine, the driver's own interpreter serves
        os.environ["PYSPARK_PYTHON"] = sys.executable
        b = b.config("spark.pyspark.python", sys.executable)
    for k in ("PYTHONPATH", "CREMA_LIBRARY", "OPENBLAS_NUM_THREADS"):
        if os.environ.get(k):
            b = b.config("spark.executorEnv." + k, os.environ[k])
    return b.getOrCreate()


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    master = None
    if "--master" in argv:
        i = argv.index("--master")
        if i + 1 >= len(argv):
            print("crema.spark: --master needs a URL", file=sys.stderr)
            return 2
        master = argv[i + 1]
        del argv[i:i + 2]
    if "-help" in argv or "--help" in argv or not argv:
        print(__doc__)
        return 0 if argv else 2
    # the package may run from the source tree under spark-submit
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if here not in sys.path:
        sys.path.insert(0, here)
    from crema.spark import CaffeOnSpark, Config, DataSource
    try:
        spark = _session(master)
    except Exception as e:  # no Java, bad master URL
        print("crema.spark: cannot start Spark: %s" % e, file=sys.stderr)
        return 1
    try:
        conf = Config(spark, argv)
        if not (conf.isTraining or conf.isTest or conf.isFeature):
            raise ValueError("give -train, -test or -features")
        cos = CaffeOnSpark(spark)
        if conf.isTraining:
            cos.train(DataSource(spark).getSource(conf, True))
        if conf.isTest:
            result = cos.test(DataSource(spark).getSource(conf, False))
            print(json.dumps(result))
            if conf.outputPath:
                # with -features too, the features own -output
                path = conf.outputPath.rstrip("/") + ("_test" if conf.isFeature else "")
                out = spark.createDataFrame([(k, v) for k, v in result.items()], "name string, mean array<double>")
                out.coalesce(1).write.mode("overwrite").json(path)
        if conf.isFeature:
            df = cos.features(DataSource(spark).getSource(conf, False))
            if not conf.outputPath:
                raise ValueError("-features needs -output")
            fmt = conf.outputFormat
            if fmt not in ("json", "parquet"):
                raise ValueError("-outputFormat %s: crema.spark writes json or parquet" % fmt)
            df.write.mode("overwrite").format(fmt).save(conf.outputPath)
        return 0
    except ValueError as e:
        print("crema.spark: %s" % e, file=sys.stderr)
        return 1
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
