import sys
from pathlib import Path

# Test helper modules (optest) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

# The example programs' models (examples/models.py) are imported by the tests as `models`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
