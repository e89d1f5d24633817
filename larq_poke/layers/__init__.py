"""Keras layers and functional units of the larq-poke model families (PokeBNN, BNext, BiNeal)."""

from larq_poke.layers.shortcuts import ChannelShrink, ChannelTile, ChannelZeroPad, PaddedAveragePool2D
from larq_poke.layers.pokebnn import DPReLU, HardSigmoid, poke_conv, poke_init, poke_squeeze_excite
from larq_poke.layers.bineal import BiNealSign, BiNealWeight, bineal_block
from larq_poke.layers.bnext import BNextBinaryConv2D, BNextSign, BNextWeightSign, LearnableBias, ScaleMix, SymmetricMaxPool2D

__all__ = [
    "BiNealSign",
    "BiNealWeight",
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
    "bineal_block",
    "SymmetricMaxPool2D",
    "poke_conv",
    "poke_init",
    "poke_squeeze_excite",
]
