"""The CPU kernels every computation runs on: one instruction set on any x86-64 CPU, so that an AMD EPYC and an Intel
Xeon compute the same float bits.

The numerical libraries choose their kernels by the CPU they find (AVX-512 and AMX where there are some, AVX2
otherwise) and the order of their sums with them. KERNELS fixes that choice at AVX2, the widest instruction set every
x86-64 server CPU of the last decade has, through each library's documented setting:

  ATEN_CPU_CAPABILITY=avx2                   torch's vectorised operators (ATen CPU dispatch)
  MKL_ENABLE_INSTRUCTIONS=AVX2,             torch's BLAS (oneMKL): AVX2 code path, conditional numerical
  MKL_CBWR=AVX2,STRICT                       reproducibility in its strict mode (the same sums on every AVX2 CPU,
                                             whatever the number of threads: a Ray actor with one thread and this
                                             process with two agree)
  ONEDNN_MAX_CPU_ISA=AVX2                    torch's convolutions (oneDNN)
  OPENBLAS_CORETYPE=Haswell                  numpy's, scipy's and scikit-learn's BLAS (OpenBLAS, its AVX2 kernels)
  FAISS_SIMD_LEVEL=AVX2                      faiss' dispatched distance kernels

CTranslate2 models are only converted here, never run (its setting would be CT2_FORCE_CPU_ISA). onnxruntime (Silero's
sequence model, the Piper and Kokoro voices) has no such setting: its outputs feed thresholds (vocal activity) or
stored audio (the frozen `speech` stage), not the arrays DVC hashes downstream.

The variables must be in the environment before the libraries load, so `pin` runs at `import paperlib`, and the
pipeline's stages start through `paperlib notebook` (a new process: its kernels see them from the start).
PAPERLIB_NATIVE_KERNELS=1 leaves every library its own choice: faster on AVX-512 machines, bits specific to the CPU.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "MKL_CBWR": "AVX2,STRICT",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "FAISS_SIMD_LEVEL": "AVX2",
}
NATIVE = "PAPERLIB_NATIVE_KERNELS"
LIBRARIES = ("numpy", "torch", "faiss")
"""Libraries that read KERNELS when they load (or at their first computation)."""


def pin(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set KERNELS in `environ` (overriding other values) unless environ[NATIVE] is "1"; returns what it set."""
    if environ.get(NATIVE) == "1":
        return {}
    environ.update(KERNELS)
    return dict(KERNELS)


def loaded_before(modules=sys.modules) -> list[str]:
    """LIBRARIES already imported: a `pin` now comes too late for their kernels (numpy's OpenBLAS, faiss)."""
    return [name for name in LIBRARIES if name in modules]
