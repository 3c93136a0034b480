"""Full fine-tuning has no settings of its own: the grid's `train:` says how it trains."""

from bench.spec.settings import MethodSettings


class FinetuneSettings(MethodSettings):
    pass
