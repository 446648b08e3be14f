"""rltool: train, evaluate, tune and record deep RL agents from YAML files."""

__version__ = "0.1.0"
