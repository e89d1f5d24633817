"""The LCE pipeline: Keras model -> deployable rewrite -> TFLite flatbuffer with LCE ops, with an
op census, a Keras-vs-TFLite parity check and a conversion report.

```python
import larq_poke
from larq_poke.converters import convert
result = convert(larq_poke.zoo.PokeBNN(0.5), int8=True)
print(result.report.to_text())
```
"""

from larq_poke.converters.lce import ConversionReport, ConversionResult, StrictConversionError, convert, deployable  # noqa: E501,F401
from larq_poke.converters.rewrites import pokebnn as _pokebnn  # noqa: F401  (registers the PokeBNN rewrite)
from larq_poke.converters.rewrites import bnext as _bnext  # noqa: F401  (registers the BNext rewrite)
