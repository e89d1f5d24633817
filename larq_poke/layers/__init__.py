"""Keras layers of the larq-poke model families (PokeBNN, BNext)."""

from larq_poke.layers.shortcuts import ChannelShrink, ChannelTile, ChannelZeroPad, PaddedAveragePool2D
from larq_poke.layers.pokebnn import DPReLU, PokeConv, PokeInit, PokeSqueezeExcite
from larq_poke.layers.bnext import BNextBinaryConv2D, BNextSign, BNextWeightSign, LearnableBias, ScaleMix, SymmetricMaxPool2D

__all__ = [
    "BNextBinaryConv2D",
    "BNextSign",
    "BNextWeightSign",
    "ChannelShrink",
    "ChannelTile",
    "ChannelZeroPad",
    "DPReLU",
    "LearnableBias",
    "PaddedAveragePool2D",
    "PokeConv",
    "PokeInit",
    "PokeSqueezeExcite",
    "ScaleMix",
    "SymmetricMaxPool2D",
]
