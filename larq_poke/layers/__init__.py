"""Keras layers and functional units of the larq-poke model families (PokeBNN, BNext)."""

from larq_poke.layers.shortcuts import ChannelShrink, ChannelTile, ChannelZeroPad, PaddedAveragePool2D
from larq_poke.layers.pokebnn import DPReLU, HardSigmoid, poke_conv, poke_init, poke_squeeze_excite
from larq_poke.layers.bnext import BNextBinaryConv2D, BNextSign, BNextWeightSign, LearnableBias, ScaleMix, SymmetricMaxPool2D

__all__ = [
    "BNextBinaryConv2D",
    "BNextSign",
    "BNextWeightSign",
    "ChannelShrink",
    "ChannelTile",
    "ChannelZeroPad",
    "DPReLU",
    "HardSigmoid",
    "LearnableBias",
    "PaddedAveragePool2D",
    "ScaleMix",
    "SymmetricMaxPool2D",
    "poke_conv",
    "poke_init",
    "poke_squeeze_excite",
]
