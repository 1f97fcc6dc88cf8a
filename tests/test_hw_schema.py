"""Schema hygiene: every field described, integer quantities carry their unit, unknown keys and
mutation refused on every model."""

import typing

import pytest
from pydantic import BaseModel, ValidationError

from npusim.hw import schema, schema_core

MODELS = [
    obj for mod in (schema, schema_core) for obj in vars(mod).values()
    if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == mod.__name__
    and obj is not schema_core.Model
]

UNIT_SUFFIXES = ("_bytes", "_cycles", "_mhz", "_bytes_per_cycle", "_gb_per_s", "_per_cycle",
                 "_cycle", "_repeat")
# integer fields that are counts or ids, not physical quantities
UNITLESS_COUNTS = {
    "count", "max_repeats", "max_mkn", "mask_bits", "mantissa_bits", "ub_bank_groups", "event_ids",
    "user_event_ids", "cross_core_flag_ids", "cross_core_counter_max", "schema_version",
}


def _is_int(annotation) -> bool:
    """int, Annotated int or int | None (containers such as tuples of ints are not scalars)."""
    if annotation is int:
        return True
    if typing.get_origin(annotation) in (tuple, list, dict):
        return False
    return any(_is_int(a) for a in typing.get_args(annotation))


def test_models_found():
    """The hygiene checks below see every descriptor model (guards against an empty list)."""
    names = {m.__name__ for m in MODELS}
    assert {"SocDescriptor", "CoreDescriptor", "TransferSpec", "CubeSpec", "VectorSpec"} <= names


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_has_a_description(model):
    """Field(description=...) is set, non-empty, on every field of every model."""
    for name, info in model.model_fields.items():
        assert info.description and info.description.strip(), f"{model.__name__}.{name}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_models_forbid_unknown_keys_and_are_frozen(model):
    """extra='forbid' and frozen=True on every model."""
    assert model.model_config.get("extra") == "forbid"
    assert model.model_config.get("frozen") is True


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_integer_quantities_name_their_unit(model):
    """Integer fields end in a unit suffix (_bytes, _cycles, _mhz, ...) unless they are counts."""
    for name, info in model.model_fields.items():
        if _is_int(info.annotation) and name not in UNITLESS_COUNTS:
            assert name.endswith(UNIT_SUFFIXES), f"{model.__name__}.{name}"


def test_unknown_key_rejected_directly():
    """Constructing a model with an extra key raises a ValidationError naming the key."""
    with pytest.raises(ValidationError, match="capacity_byte"):
        schema_core.BufferSpec(capacity_byte=1, alignment_bytes=32, source="x")
    with pytest.raises(ValidationError, match="power of two"):
        schema_core.BufferSpec(capacity_bytes=64, alignment_bytes=48, source="x")
