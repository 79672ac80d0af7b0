"""setup.py's build step for the crema package: builds libcrema.so with the
repository's CMakeLists.txt and puts it into the package as
crema/_lib/libcrema.so, and makes the caffe package's caffe_pb2 with protoc.
Shared by python/setup.py and the root setup.py.

Environment:
  CREMA_SOURCE_DIR       the crema source tree (default: found upwards from here)
  CREMA_CMAKE_BUILD_DIR  where CMake builds (default: under setuptools' build_temp);
                         a persistent one makes reinstalls incremental
  CMAKE_BUILD_PARALLEL_LEVEL  compile jobs (default: the number of CPUs)
"""
import os
import shutil
import subprocess

from setuptools import Distribution
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_NAME = "libcrema.so"


def find_source_root():
    env = os.environ.get("CREMA_SOURCE_DIR")
    candidates = [env] if env else [os.path.dirname(HERE), HERE]
    for d in candidates:
        cm = os.path.join(d, "CMakeLists.txt")
        if os.path.isfile(cm) and os.path.isfile(os.path.join(d, "include", "crema.h")):
            return os.path.abspath(d)
    raise RuntimeError(
        "crema: cannot find the crema source tree (CMakeLists.txt and include/crema.h) "
        "in %s; build from a checkout or set CREMA_SOURCE_DIR" % ", ".join(c for c in candidates if c))


def build_libcrema(build_temp):
    """Configures and builds the shared library; returns its path."""
    cmake = shutil.which("cmake")
    if not cmake:
        raise RuntimeError("crema: cmake is not installed (Debian: apt-get install cmake; see scripts/deps.sh)")
    src = find_source_root()
    build_dir = os.path.abspath(os.environ.get("CREMA_CMAKE_BUILD_DIR") or os.path.join(build_temp, "cmake"))
    os.makedirs(build_dir, exist_ok=True)
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        subprocess.check_call([cmake, "-S", src, "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"])
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
    subprocess.check_call([cmake, "--build", build_dir, "--target", "crema_shared", "--parallel", jobs])
    lib = os.path.join(build_dir, "lib", LIB_NAME)
    if not os.path.isfile(lib):
        raise RuntimeError("crema: the CMake build did not produce %s" % lib)
    return lib


def find_protoc():
    """protoc: the one on PATH (Debian's protobuf-compiler), else the one
    grpcio-tools ships; None if neither is here."""
    protoc = shutil.which("protoc")
    if protoc:
        return [protoc]
    try:
        import grpc_tools.protoc  # noqa: F401
    except ImportError:
        return None
    import sys
    return [sys.executable, "-m", "grpc_tools.protoc"]


def generate_caffe_pb2(build_temp, dest_dir):
    """caffe/proto/caffe_pb2.py from src/proto/caffe.proto, made by protoc.
    The schema's protobuf-c import and options (C names only) are left out
    of the copy protoc reads; the messages, fields and defaults are the
    schema's own."""
    protoc = find_protoc()
    if not protoc:
        raise RuntimeError("crema: protoc is needed to make caffe_pb2 (Debian: apt-get install protobuf-compiler; "
                           "or pip install grpcio-tools; see scripts/deps.sh)")
    src = os.path.join(find_source_root(), "src", "proto", "caffe.proto")
    work = os.path.abspath(os.path.join(build_temp, "caffe_proto"))
    os.makedirs(work, exist_ok=True)
    with open(src, encoding="utf-8") as f:
        lines = [line for line in f
                 if not line.startswith('import "protobuf-c/') and "(pb_c_msg)" not in line]
    with open(os.path.join(work, "caffe.proto"), "w", encoding="utf-8") as f:
        f.writelines(lines)
    subprocess.check_call(protoc + ["-I" + work, "--python_out=" + work, os.path.join(work, "caffe.proto")])
    os.makedirs(dest_dir, exist_ok=True)
    shutil.copy2(os.path.join(work, "caffe_pb2.py"), os.path.join(dest_dir, "caffe_pb2.py"))


class BuildPyWithLibcrema(build_py):
    """build_py that also builds libcrema and copies it to crema/_lib, and
    makes caffe/proto/caffe_pb2.py."""

    def run(self):
        super().run()
        build_temp = self.get_finalized_command("build").build_temp
        lib = build_libcrema(build_temp)
        editable = getattr(self, "editable_mode", False)
        if editable:
            pkg_dir = self.get_package_dir("crema")
            proto_dir = self.get_package_dir("caffe.proto")
        else:
            pkg_dir = os.path.join(self.build_lib, "crema")
            proto_dir = os.path.join(self.build_lib, "caffe", "proto")
        dest = os.path.join(pkg_dir, "_lib")
        os.makedirs(dest, exist_ok=True)
        shutil.copy2(lib, os.path.join(dest, LIB_NAME))
        generate_caffe_pb2(build_temp, proto_dir)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for the platform."""

    def has_ext_modules(self):
        return True


# What crema.spark needs at run time: Spark 3.5 (Java 17, and the first
# line with mapInArrow(barrier=True); pyspark 4 would need pandas >= 2.2 and
# changes its packaging), pyarrow for the Arrow batches, pandas for
# pyspark's Arrow paths.
SPARK_REQUIRES = ["pyspark>=3.5.0,<3.6", "pyarrow>=14,<20", "pandas>=2.0,<3"]


# caffe.io's load_image and resize_image, as pycaffe's: scikit-image, and
# scipy for images of other than 1 or 3 channels.
IMAGE_REQUIRES = ["scikit-image", "scipy"]


def setup_kwargs(base):
    """setup() arguments; base is the directory holding the crema and com
    packages, relative to the setup.py that calls this ("" or "python")."""
    readme = os.path.join(HERE, "README.md")
    with open(readme, encoding="utf-8") as f:
        long_description = f.read()
    return dict(
        name="crema",
        version="0.1.0",
        description="Caffe-compatible deep learning in C (libcrema), from Python",
        long_description=long_description,
        long_description_content_type="text/markdown",
        python_requires=">=3.8",
        # com, com.yahoo and com.yahoo.ml are namespace packages (PEP 420)
        packages=["crema", "crema.spark", "com.yahoo.ml.caffe", "caffe", "caffe.proto"],
        package_dir={"crema": os.path.join(base, "crema"),
                     "com.yahoo.ml.caffe": os.path.join(base, "com", "yahoo", "ml", "caffe"),
                     "caffe": os.path.join(base, "caffe")},
        # caffe_pb2 is made by protoc 3.20 or later (Debian 12's is 3.21),
        # whose code needs protobuf's runtime from 3.20 on.
        install_requires=["numpy", "protobuf>=3.20"],
        extras_require={"spark": SPARK_REQUIRES, "images": IMAGE_REQUIRES},
        cmdclass={"build_py": BuildPyWithLibcrema},
        distclass=BinaryDistribution,
        zip_safe=False,
    )
