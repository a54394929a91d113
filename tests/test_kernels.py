"""paperlib.runtime.kernels: `import paperlib` pins every numerical library to AVX2 kernels, over the environment,
unless PAPERLIB_NATIVE_KERNELS=1; the libraries then report the pinned instruction set."""

import json
import os
import subprocess
import sys

from paperlib.runtime import kernels

PROBE = """
import json, paperlib, numpy, torch, faiss
from threadpoolctl import threadpool_info
blas = [i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"]
print(json.dumps({"torch": torch.backends.cpu.get_cpu_capability(), "faiss": faiss.SIMDConfig.get_level_name(),
                  "openblas": blas, "mkl_cbwr": __import__("os").environ.get("MKL_CBWR")}))
"""


def probe(**env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in kernels.KERNELS and k != kernels.NATIVE}
    proc = subprocess.run([sys.executable, "-c", PROBE], env=base | env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pin_sets_every_setting_unless_native():
    environ = {"ATEN_CPU_CAPABILITY": "avx512"}
    assert kernels.pin(environ) == kernels.KERNELS and environ == kernels.KERNELS
    native = {kernels.NATIVE: "1", "ATEN_CPU_CAPABILITY": "avx512"}
    assert kernels.pin(native) == {} and native["ATEN_CPU_CAPABILITY"] == "avx512"


def test_loaded_before_names_the_libraries_already_imported():
    assert kernels.loaded_before({"numpy": object(), "os": object()}) == ["numpy"]


def test_a_process_importing_paperlib_first_runs_avx2_kernels_whatever_the_environment_forces():
    forced = {"ATEN_CPU_CAPABILITY": "avx512", "FAISS_SIMD_LEVEL": "AVX512", "OPENBLAS_CORETYPE": "SkylakeX"}
    pinned = probe(**forced)
    assert pinned["torch"] == "AVX2" and pinned["faiss"] == "AVX2" and pinned["mkl_cbwr"] == kernels.KERNELS["MKL_CBWR"]
    assert {arch.lower() for arch in pinned["openblas"]} == {"haswell"}  # numpy's and faiss' OpenBLAS
    native = probe(**forced, PAPERLIB_NATIVE_KERNELS="1")
    assert native["faiss"] == "AVX512" and native["mkl_cbwr"] is None
    assert {arch.lower() for arch in native["openblas"]} == {"skylakex"}
