"""Operators: reference semantics, tilings, kernel selection and tiled-program generators."""
