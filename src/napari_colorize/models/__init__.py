"""The models: the Colorizer interface (base.py), the networks, the baselines, their configs and the registry."""
