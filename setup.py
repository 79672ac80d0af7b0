"""pip install . from the repository root: the same package as
python/setup.py (the crema package lives in python/crema)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
from setuptools import setup  # noqa: E402

from crema_build import setup_kwargs  # noqa: E402

kw = setup_kwargs("python")
# Keep setuptools' files apart from CMake's build/ tree.
kw["options"] = {"build": {"build_base": "build/python-setuptools"}}
setup(**kw)
