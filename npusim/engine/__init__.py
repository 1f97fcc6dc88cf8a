"""npusim.engine."""
