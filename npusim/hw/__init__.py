"""Hardware descriptors: pydantic models of Ascend SoCs, loaded from the YAML files in
``npusim.socs`` (or a user file), with what-if overrides for one run.

The engine uses only this API::

    from npusim.hw import load_soc, list_socs, validate_soc_file, DescriptorError
"""

from npusim.hw.errors import DescriptorError
from npusim.hw.loader import list_socs, load_soc, validate_soc_file
from npusim.hw.schema import SCHEMA_VERSION, SocDescriptor
from npusim.hw.schema_core import (
    BufferSpec,
    CoreDescriptor,
    CubeSpec,
    FixpipeSpec,
    ScalarSpec,
    TransferSpec,
    VectorSpec,
)

__all__ = [
    "SCHEMA_VERSION",
    "BufferSpec",
    "CoreDescriptor",
    "CubeSpec",
    "DescriptorError",
    "FixpipeSpec",
    "ScalarSpec",
    "SocDescriptor",
    "TransferSpec",
    "VectorSpec",
    "list_socs",
    "load_soc",
    "validate_soc_file",
]
