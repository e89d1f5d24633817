"""BNext zoo constructors: stage-list rules, argument checks, names."""

import pytest

from larq_poke.zoo import BNext, BNext18, BNextT, bnext


def test_block_rules_of_bnext_t():
    specs = bnext.block_specs(bnext.STAGES["tiny"])
    assert len(specs) == 13
    assert [s.stride for s in specs] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert [s.token_mixer for s in specs] == ["ffn_3x3" if i % 2 else "elm" for i in range(1, 14)]
    assert [s.index for s in specs if s.doubling] == [1, 2, 4, 6, 12]
    assert specs[0].channel_mixers == ["FFN_1", "FFN_2"] and specs[2].channel_mixers == ["FFN"]


def test_official_stage_lists():
    assert {k: (len(v) - 1, v[0], v[-1]) for k, v in bnext.STAGES.items()} == {
        "tiny": (13, 32, 1024),
        "small": (13, 48, 1536),
        "middle": (21, 48, 1536),
        "large": (29, 64, 2048),
    }
    assert bnext.variant_name(bnext.STAGES["middle"]) == "bnext-m"
    assert bnext.variant_name([16, 32]) is None
    assert set(bnext.MODELS) == {"bnext-t", "bnext-s", "bnext-m", "bnext-l", "bnext-18"}


@pytest.mark.parametrize("size", [200, 225, 48])
def test_imagenet_configs_need_multiples_of_32(size):
    with pytest.raises(ValueError, match="multiples of 32"):
        BNextT(input_shape=(size, size, 3))
    with pytest.raises(ValueError, match="multiples of 32|too small"):
        BNext18(input_shape=(size, 224, 3))


@pytest.mark.parametrize(
    "stages, message",
    [([16], "at least one block"), ([16, 48], "keep the channel count or double"), ([4, 8], ">= 8")],
)
def test_bad_stage_lists(stages, message):
    with pytest.raises(ValueError, match=message):
        BNext(stages, input_shape=(32, 32, 3))


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown BNext variant"):
        BNext("huge")
    with pytest.raises(ValueError, match="only for the official variants"):
        BNext([16, 32, 64], weights="imagenet")
    with pytest.raises(ValueError, match="stem_stride"):
        BNext("tiny", stem_stride=4)
    with pytest.raises(ValueError, match="No ImageNet weights were released for BNext-18"):
        BNext18(weights="imagenet")


def test_custom_layout_builds_with_official_names():
    model = BNext([8, 16, 32, 32], input_shape=(32, 32, 3), num_classes=10, stem_stride=1)
    assert model.output_shape == (None, 10)
    names = {layer.name for layer in model.layers}
    assert {"feature.0.conv1", "feature.2.Attention.activation1", "feature.3.FFN.se.se.3", "fc"} <= names
    assert "feature.1.Attention.activation1" not in names  # FFN_3x3 units do not use it
    assert [t.shape[1] for t in bnext.feature_outputs(model)] == [32, 32, 16, 16]
