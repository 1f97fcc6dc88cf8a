"""SoC descriptors shipped with npusim (YAML files in this package)."""
