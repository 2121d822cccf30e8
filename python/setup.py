# setup.py: builds the dh package's extension module (dh._dh) over libdh.
# Run by `make python` (in place into the build tree) with the environment
# below; not meant to be run by hand.  See LICENSE.
#
#   DH_TOP      the source tree (for lib/*.h)
#   DH_LIBDH    libdh_pic.a: libdh's position-independent objects
#   DH_LDLIBS   what libdh links with (pkg-config --libs of its dependencies)
#   DH_CFLAGS   the project's warning flags (and -Werror under WERROR=1)
import os
import shlex

from setuptools import Extension, setup

top = os.environ["DH_TOP"]
pyinc = __import__("sysconfig").get_paths()["include"]
libs = shlex.split(os.environ.get("DH_LDLIBS", ""))

ext = Extension(
    "dh._dh",
    sources=["dh/_dh.c"],
    include_dirs=[os.path.join(top, "lib")],
    # the Python headers as system headers: our warnings are for our code
    extra_compile_args=["-std=c11", "-D_GNU_SOURCE", '-DDH_VERSION="%s"' % os.environ.get("DH_VERSION", "0"),
                        "-isystem", pyinc]
    + shlex.split(os.environ.get("DH_CFLAGS", "")),
    # libdh linked in statically and kept private: the module needs no
    # libdh.so at run time and exports nothing but PyInit__dh
    extra_objects=[os.environ["DH_LIBDH"]],
    extra_link_args=["-Wl,--exclude-libs,ALL"] + [a for a in libs if not a.startswith("-l")],
    libraries=[a[2:] for a in libs if a.startswith("-l")],
)

setup(
    name="dh",
    version=os.environ.get("DH_VERSION", "0"),
    description="dh: shared-memory channels between processes (Python bindings of libdh)",
    packages=["dh"],
    package_data={"dh": ["py.typed", "_dh.pyi"]},
    ext_modules=[ext],
)
