"""Infix-tuning has prefix-tuning's settings: the same activations, placed differently."""

from bench.methods.prefix.config import PrefixSettings


class InfixSettings(PrefixSettings):
    pass
