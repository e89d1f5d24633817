"""Importers for official checkpoints and the LCE conversion pipeline."""

from larq_poke.converters.pokebnn_flax import load_pokebnn_flax, read_flax_checkpoint
