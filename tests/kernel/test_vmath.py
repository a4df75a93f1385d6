"""exp, log and tanh of f32 as kernel-IR polynomials (graphc.kernel.vmath): their error bounds.

Each function runs compiled over a sample of every f32 (one bit pattern in 997:
4.3 million values, the subnormals and both signs included) and is compared
with float64 numpy, the error measured in units in the last place of the f32
result.  The bounds are those vmath's docstring states.  Non-finite results
(overflow, log of 0 and of negatives, nan in) must equal numpy's exactly.  The
AVX2 code (``GRAPHC_ISA=avx2``) and OpenCL run the same check.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc.backends import opencl

# The largest error allowed, in ulp (vmath's docstring).
BOUNDS = {"exp": 1.0, "log": 1.0, "tanh": 1.5}
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17549435e-38, 3.4028235e38,
                    -3.4028235e38, 88.72, 88.73, 89.0, -87.3, -103.9, -104.0, 0.625, -0.625, 9.0, 1.0],
                   np.float32)


def _sample(stride: int) -> np.ndarray:
    bits = np.arange(0, 2 ** 32, stride, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([bits.view(np.float32), SPECIAL])


def _errors(backend: str = "llvm", stride: int = 997) -> dict[str, float]:
    """Each function's largest error in ulp over the sample; inf where a non-finite result differs."""
    x = _sample(stride)
    compiled = graphc.compile(lambda t: (t.exp(), t.log(), t.tanh()), backend=backend)
    got = [np.asarray(value.numpy()) for value in compiled(graphc.tensor(x))]
    errors = {}
    with np.errstate(all="ignore"):
        x64 = x.astype(np.float64)
        for name, value, want in zip(BOUNDS, got, (np.exp(x64), np.log(x64), np.tanh(x64))):
            rounded = want.astype(np.float32)
            finite = np.isfinite(rounded)
            same = (value == rounded) | (np.isnan(value) & np.isnan(rounded))
            if not same[~finite].all():
                errors[name] = float("inf")
                continue
            ulp = np.spacing(np.abs(rounded[finite])).astype(np.float64)
            errors[name] = float((np.abs(value[finite].astype(np.float64) - want[finite]) / ulp).max())
    return errors


def _check(errors: dict[str, float]) -> None:
    for name, bound in BOUNDS.items():
        assert errors[name] <= bound, f"{name}: {errors[name]} ulp, more than {bound}"


def test_exp_log_tanh_within_their_bounds():
    _check(_errors())


def test_the_avx2_code_is_as_accurate():
    script = "import json, test_vmath; print(json.dumps(test_vmath._errors(stride=9973)))"
    env = {**os.environ, "GRAPHC_ISA": "avx2"}
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    _check(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(not opencl.available(), reason="no OpenCL device builds kernels here")
def test_opencl_computes_the_same_polynomials():
    _check(_errors("opencl", stride=99991))


def test_the_polynomials_are_vector_code():
    """No call to a scalar exp, log or tanh is left in the LLVM code of a vectorized kernel."""
    x = graphc.tensor(np.linspace(-5, 5, 256, dtype=np.float32))
    compiled = graphc.compile(lambda t: t.exp() + t.abs().log() + t.tanh() + t.sigmoid())
    compiled(x)
    (llvm,) = compiled.kernels(x, source="llvm")
    assert not any(name in llvm for name in ("@llvm.exp.f32", "@llvm.log.f32", "@tanhf", "@expf", "@logf"))
    assert "<16 x float>" in llvm or "<8 x float>" in llvm
