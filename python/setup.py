"""pip install ./python: builds libcrema with CMake and installs the crema
package with the library inside it (see crema_build.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from setuptools import setup  # noqa: E402

from crema_build import setup_kwargs  # noqa: E402

setup(**setup_kwargs(""))
