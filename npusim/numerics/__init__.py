"""npusim.numerics."""
