"""npusim.report."""
