"""Named metadata in a TFLite flatbuffer (the schema's ``metadata`` list: a name and a buffer).

``larq-poke train`` stores the preprocessing a model was trained with as
``larq_poke.preprocessing`` (JSON), so that ``larq-poke eval model.tflite`` evaluates it the same
way without flags. Other TFLite tools ignore unknown metadata.

```python
data = add_metadata(flatbuffer, "larq_poke.preprocessing", json.dumps(prep.to_dict()).encode())
read_metadata(data, "larq_poke.preprocessing")      # the bytes, or None
```
"""

from __future__ import annotations

from typing import Optional

__all__ = ["add_metadata", "read_metadata", "PREPROCESSING_KEY"]

PREPROCESSING_KEY = "larq_poke.preprocessing"


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


def add_metadata(flatbuffer: bytes, name: str, data: bytes) -> bytes:
    """``flatbuffer`` with metadata ``name`` set to ``data`` (replacing an entry of that name)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    buffer = schema.BufferT()
    buffer.data = list(data)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if (m.name.decode() if isinstance(m.name, bytes) else m.name) != name]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(flatbuffer) + len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_metadata(flatbuffer: bytes, name: str) -> Optional[bytes]:
    """The data of metadata ``name``, or ``None`` when the flatbuffer has none of that name."""
    schema = _schema()
    model = schema.Model.GetRootAs(flatbuffer, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() is not None and entry.Name().decode() == name:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None
