"""python -m crema.spark: see crema.spark.main."""
import sys

from .main import main

sys.exit(main())
