"""Test configuration: make the helper modules in this folder (``_fake_soc``) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
