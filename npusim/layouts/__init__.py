"""npusim.layouts."""
