"""The LCE pipeline: Keras model -> deployable rewrite -> TFLite flatbuffer with LCE ops, with an
op census, a Keras-vs-TFLite parity check and a conversion report.

```python
import larq_poke
from larq_poke.converters import convert
result = convert(larq_poke.zoo.PokeBNN(0.5), int8=True)
print(result.report.to_text())
```

Submodules: :mod:`~.lce` (``convert``), :mod:`~.rewrites` (the deployable forms, one module per
family), :mod:`~.binary_layers` (which layers LCE can fuse), :mod:`~.flatbuffer` (reading
``.tflite`` files), :mod:`~.conversion_report`. They load on first use.
"""

import importlib

_EXPORTS = {
    "convert": "larq_poke.converters.lce",
    "ConversionResult": "larq_poke.converters.lce",
    "ConversionReport": "larq_poke.converters.conversion_report",
    "MisquantizedBiasError": "larq_poke.converters.conversion_report",
    "QuantizationInfoError": "larq_poke.converters.conversion_report",
    "StrictConversionError": "larq_poke.converters.conversion_report",
    "deployable": "larq_poke.converters.rewrites",
    "fold_bineal": "larq_poke.converters.rewrites.bineal",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'larq_poke.converters' has no attribute {name!r}")
