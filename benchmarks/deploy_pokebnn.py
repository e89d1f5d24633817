"""Deployable PokeBNN-1.0x (224x224) with LCE: census, float glue per PokeConv, conversion time,
float and int8 file sizes against the storable packed size; BNext-T the same way.

    python benchmarks/deploy_pokebnn.py [--width 1.0] [--size 224] [--skip-bnext]

Targets (issue "LCE deployment pipeline"): 48/48 binary convs -> LceBconv2d, no LceDequantize,
no TILE / TRANSPOSE / GREATER / SELECT_V2, <= 6 full-resolution float elementwise ops per
PokeConv on average, conversion <= 90 s, int8 file <= 10.0 MB and <= 1.15 x the storable packed
size (binary weights at 1 bit, SE's int4 and the 8-bit stem / head at 8 bits, the rest fp32:
``storable_size_bytes`` of ``larq_poke.cost``).
Slow (minutes); not part of the test suite.
"""

from __future__ import annotations

import argparse
import time

import common

FORBIDDEN = ("TILE", "TRANSPOSE", "GREATER", "GREATER_EQUAL", "SELECT", "SELECT_V2")


def input_sensitivity(model, samples, relative: float) -> float:
    """Max |change| of the Keras logits when the input is perturbed by ``relative`` noise: how
    far binarizer flips alone move this model (a random network amplifies every flip)."""
    import numpy as np

    noise = np.random.default_rng(3).standard_normal(samples.shape).astype(np.float32)
    reference = model.predict(samples, verbose=0)
    perturbed = model.predict(samples * (1 + relative * noise), verbose=0)
    return float(np.abs(perturbed - reference).max())


def move_folds(model) -> str:
    """How the deployable BNext rewrite treats the move biases (``sign(x + b)``) of ``model``."""
    from larq_poke.converters.rewrites.bnext import bnext_deployable
    from larq_poke.layers.bnext import LearnableBias

    total = sum(isinstance(layer, LearnableBias) for layer in model.layers)
    deployable = bnext_deployable(model)
    kept = sum(isinstance(layer, LearnableBias) for layer in deployable.layers)
    differences = sum(layer.name.endswith(".move") and not isinstance(layer, LearnableBias)
                      for layer in deployable.layers)
    return (f"{total - kept - differences} of {total} folded away, {differences} kept as the "
            f"difference of two biases, {kept} kept as they are")


def describe(label: str, model, result, seconds: float, samples) -> dict:
    from larq_poke.converters.flatbuffer import full_resolution_elementwise_ops

    report = result.report
    glue = full_resolution_elementwise_ops(result.model_info)
    fused = sum(1 for fate in report.binary_layers if fate.fused)
    forbidden = {op: report.op_counts[op] for op in FORBIDDEN if op in report.op_counts}
    size, packed, storable = report.size_bytes, report.packed_size_bytes, report.storable_size_bytes
    print(f"--- {label}: {model.name}")
    print(f"  rewrites: {report.rewrites or 'none'}; precision: {report.precision}")
    print(f"  binary layers -> LceBconv2d: {fused}/{len(report.binary_layers)}; "
          f"LceBconv2d ops: {report.op_counts.get('LceBconv2d', 0)}; "
          f"LceDequantize: {report.lce_dequantize}; forbidden ops: {forbidden or 'none'}")
    print(f"  total ops: {sum(report.op_counts.values())}; census: {report.op_counts}")
    print(f"  full-resolution elementwise ops: {glue['total']} {glue['counts']} = "
          f"{glue['per_binary_conv']:.2f} per binary conv")
    print(f"  conversion: {report.conversion_seconds:.1f} s in LCE, {seconds:.1f} s with "
          "rewrite + census + parity")
    print(f"  size: {size / 1e6:.2f} MB; packed {packed / 1e6:.2f} MB (file / packed = "
          f"{size / packed:.3f}); storable {storable / 1e6:.2f} MB (file / storable = "
          f"{size / storable:.3f})")
    parity = report.parity
    if parity.checked:
        print(f"  parity vs the original Keras model ({parity.num_samples} random images): "
              f"max |diff| {parity.max_abs_diff:.3g} (max |logit| {parity.max_abs_reference:.3g}), "
              f"top-1 agreement {parity.top1_agreement:.0%}")
        moves = ", ".join(f"{eps:g}: {input_sensitivity(model, samples, eps):.3g}"
                          for eps in (1e-6, 1e-5))
        print(f"  Keras logits under relative input noise (max |change|): {moves}")
    return {"fused": fused, "per_conv": glue["per_binary_conv"], "size": size, "packed": packed,
            "storable": storable, "seconds": report.conversion_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--skip-bnext", action="store_true")
    args = parser.parse_args()

    from larq_poke.converters import convert

    samples = common.images(2, args.size, seed=5)
    model = common.pokebnn(args.width, args.size)
    start = time.perf_counter()
    result = convert(model, sample_inputs=samples)
    fp = describe("PokeBNN float32", model, result, time.perf_counter() - start, samples)
    start = time.perf_counter()
    result8 = convert(model, int8=True, sample_inputs=samples)
    q8 = describe("PokeBNN int8", model, result8, time.perf_counter() - start, samples)
    line = (f"pokebnn: bconv={fp['fused']}/48 per_pokeconv={fp['per_conv']:.2f} "
            f"convert_s={fp['seconds']:.1f} float_mb={fp['size'] / 1e6:.2f} "
            f"int8_mb={q8['size'] / 1e6:.2f} packed_mb={q8['packed'] / 1e6:.2f} "
            f"storable_mb={q8['storable'] / 1e6:.2f} "
            f"int8_over_storable={q8['size'] / q8['storable']:.3f}")
    if not args.skip_bnext:
        bnext = common.bnext_t(args.size)
        start = time.perf_counter()
        result_b = convert(bnext, sample_inputs=samples)
        b = describe("BNext-T float32", bnext, result_b, time.perf_counter() - start, samples)
        print(f"  move-bias ADDs: {move_folds(bnext)}")
        line += (f" | bnext_t: bconv={b['fused']} per_conv={b['per_conv']:.2f} "
                 f"convert_s={b['seconds']:.1f} float_mb={b['size'] / 1e6:.2f} "
                 f"packed_mb={b['packed'] / 1e6:.2f}")
    print(line)


if __name__ == "__main__":
    main()
