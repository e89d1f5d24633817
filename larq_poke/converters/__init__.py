"""Importers for official checkpoints and the LCE conversion pipeline."""

from larq_poke.converters.pokebnn_flax import load_pokebnn_flax, read_flax_checkpoint
from larq_poke.converters.lce import ConversionReport, ConversionResult, StrictConversionError, convert, deployable  # noqa: E501,F401
from larq_poke.converters import pokebnn_deploy  # noqa: F401  (registers the PokeBNN rewrite)
from larq_poke.converters import bnext_deploy  # noqa: F401  (registers the BNext rewrite)
from larq_poke.converters.bnext_torch import BNextImportReport, load_bnext_torch
