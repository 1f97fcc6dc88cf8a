"""npusim.hw."""
