"""The models: the Colorizer interface (base.py) and its adapters (adapters.py), the networks, the baselines, their configs and the registry."""
