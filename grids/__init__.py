"""Grid presets: YAML files, one per preset (`python -m bench list grids`)."""
