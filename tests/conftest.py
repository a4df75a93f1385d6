import sys
from pathlib import Path

import pytest

# Test helper modules (optest, torch_twins) live beside the tests; the example programs'
# models (examples/models.py) are imported by the tests as `models`.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

_FIGURES: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def deferred_opencl_checks():
    """The op suite's OpenCL checks run in batches (tests/optest.py): the rest of a module's run at its end."""
    yield
    import optest
    optest.run_deferred()


@pytest.fixture(autouse=True)
def opencl_case(request):
    """Tell optest which parametrized case runs (it sends a covering part of a cross product to OpenCL)."""
    import optest
    callspec = getattr(request.node, "callspec", None)
    optest.current_case = None if callspec is None else (
        request.node.originalname, frozenset((name, repr(value)) for name, value in callspec.params.items()))
    yield
    optest.current_case = None


@pytest.fixture
def figures():
    """Lines a test wants shown in the session summary (measured figures, not assertions)."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("graphc figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
