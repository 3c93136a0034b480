"""Cocktail fine-tuning (Hewitt et al., 2021): fine-tuning distilled from a prefix-tuned teacher."""

from bench.methods.cocktail.config import CocktailSettings
from bench.spec.registry import register_method

register_method(
    "cocktail",
    CocktailSettings,
    "bench.methods.cocktail.model:CocktailLM",
    description="cocktail: full fine-tuning plus KL to the prefix-tuned teacher (weight beta)",
)
