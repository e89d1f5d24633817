"""Parse the text output of `lce_benchmark_model` and TensorFlow Lite's `benchmark_model`.

The tool prints (TF 2.16 era; older builds lack the ``INFO: `` prefix):

```
INFO: STARTING!
INFO: Num threads: [1]
INFO: The input model file size (MB): 3.34914
INFO: Initialized session in 3.501ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if ...
INFO: count=12 first=156677 curr=33205 min=32578 max=156677 avg=43268.1 std=34197
INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if ...
INFO: count=50 first=33228 curr=33130 min=32687 max=33239 avg=33071.8 std=129
INFO: Inference timings in us: Init: 3501, First inference: 156677, Warmup (avg): 43268.1,
      Inference (avg): 33071.8            <- a single line in the real output
INFO: Memory footprint delta from the start of the tool (MB): init=56.1523 overall=279.164
```

optionally followed by the op-profiling tables of ``--enable_op_profiling=true``. All timings in
the statistics and summary lines are microseconds; the op tables are in milliseconds.

```python
from larq_poke.bench.log_parser import parse_benchmark_log
log = parse_benchmark_log(text)
log.inference_avg_ms          # 33.0718
log.timed.min                 # 32687.0 (us)
log.op_profile.share("LceBconv2d") if log.op_profile else None
```

Lines may carry an ``INFO: `` prefix or an Android logcat prefix
(``07-14 13:14:56.521 22838 22838 I tflite  : ``); both are removed before matching, and
``\\r`` (adb shell runs in a pty) is dropped. Lines that match nothing, such as the elision
``...`` of abridged recordings, are ignored. A log without the ``Inference timings in us:``
line raises :class:`BenchmarkLogError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

__all__ = [
    "BenchmarkLog",
    "BenchmarkLogError",
    "Distribution",
    "NodeTypeSummary",
    "OpProfile",
    "OpRecord",
    "parse_benchmark_log",
    "parse_distribution",
    "strip_prefixes",
]

_NUM = r"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|nan|inf)"

_LOGCAT_PREFIX = re.compile(
    r"^\s*\d{2}-\d{2}\s+\d{2}:\d{2}:\d{2}\.\d+\s+\d+\s+\d+\s+(?P<prio>[VDIWEF])\s+[^:]*?\s*: ?"
)
_SEVERITY_PREFIX = re.compile(r"^(?P<sev>INFO|WARN|WARNING|ERROR|FATAL): ?")

_SUMMARY = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUM}), Inference \(avg\): (?P<avg>{_NUM})"
)
_RUNNING = re.compile(r"Running benchmark for at least (?P<n>\d+) iterations")
_COUNT_LINE = re.compile(r"^\s*count=")
_PAIR = re.compile(rf"(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>{_NUM})(?P<same>\(all same\))?")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): (?P<v>{_NUM})")
_INIT_TIME = re.compile(rf"Initialized \S+ in (?P<v>{_NUM})ms\.?")
_MEMORY = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\): init=(?P<init>{_NUM}) "
    rf"overall=(?P<overall>{_NUM})"
)
_PEAK_MEMORY = re.compile(
    rf"Overall peak memory footprint \(MB\) via periodic monitoring: (?P<v>{_NUM})"
)
_PARAM_ECHO = re.compile(r"^(?P<name>[A-Z][A-Za-z0-9 ()/_-]*?): \[(?P<value>[^\]]*)\]\s*$")
_LOADED = re.compile(r"^Loaded model (?P<path>\S+)")

# Op profiling.
_INIT_PROFILE = re.compile(r"Profiling Info for Benchmark Initialization")
_RUN_PROFILE = re.compile(r"Operator-wise Profiling Info for Regular Benchmark Runs")
_TABLE_TITLE = re.compile(r"^=+\s*(?P<title>[^=]+?)\s*=+\s*$")
_NODES_EXECUTED = re.compile(r"Number of nodes executed: (?P<n>\d+)")
_PROFILE_TIMINGS = re.compile(r"Timings \(microseconds\): (?P<rest>count=.*)$")
_NODES_OBSERVED = re.compile(r"^(?P<n>\d+) nodes observed")


class BenchmarkLogError(ValueError):
    """The text is not a complete benchmark log (no summary line) or reports a failure."""


def strip_prefixes(line: str) -> str:
    """Remove ``\\r``, a logcat prefix and an ``INFO: `` prefix from one output line.

    ``ERROR:`` / ``FATAL:`` / ``WARN:`` prefixes are kept (they carry meaning for the caller); a
    logcat line of priority ``E`` or ``F`` gets an ``ERROR: `` prefix if it has none.
    """
    line = line.replace("\r", "")
    match = _LOGCAT_PREFIX.match(line)
    if match:
        line = line[match.end() :]
        if match.group("prio") in "EF" and not _SEVERITY_PREFIX.match(line):
            line = "ERROR: " + line
    if line.startswith("INFO: "):
        line = line[len("INFO: ") :]
    elif line.startswith("INFO:"):
        line = line[len("INFO:") :]
    return line


def _number(text: str) -> float:
    return float(text)


@dataclass
class Distribution:
    """A ``count=… first=… curr=… min=… max=… avg=… std=…`` statistics line (microseconds).

    Missing fields are ``None`` (the single warm-up run prints only ``count=1 curr=…``). Extra keys
    printed by some builds (``p5``, ``median``, ``p95``) land in ``extra``; ``all_same`` is true
    when the tool appended ``(all same)``.
    """

    count: int
    first: Optional[float] = None
    curr: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    avg: Optional[float] = None
    std: Optional[float] = None
    extra: Dict[str, float] = field(default_factory=dict)
    all_same: bool = False

    @property
    def median(self) -> Optional[float]:
        return self.extra.get("median")

    def to_dict(self) -> dict:
        return asdict(self)


def parse_distribution(text: str) -> Distribution:
    """Parse a ``count=N key=value …`` statistics line; unknown keys go to ``extra``."""
    pairs = list(_PAIR.finditer(text))
    if not pairs or pairs[0].group("key") != "count":
        raise BenchmarkLogError(f"not a statistics line: {text!r}")
    dist = Distribution(count=int(float(pairs[0].group("value"))))
    for match in pairs[1:]:
        key, value = match.group("key"), _number(match.group("value"))
        if match.group("same"):
            dist.all_same = True
        if key in ("first", "curr", "min", "max", "avg", "std"):
            setattr(dist, key, value)
        else:
            dist.extra[key] = value
    if pairs[0].group("same"):
        dist.all_same = True
    if dist.all_same and dist.curr is not None:
        # "count=5 curr=100(all same)": every statistic equals the single value.
        for key in ("first", "min", "max", "avg"):
            if getattr(dist, key) is None:
                setattr(dist, key, dist.curr)
        if dist.std is None:
            dist.std = 0.0
    return dist


@dataclass
class OpRecord:
    """One row of a "Run Order" / "Top by Computation Time" table (times in ms)."""

    node_type: str
    first_ms: Optional[float]
    avg_ms: Optional[float]
    percent: Optional[float]
    cdf_percent: Optional[float]
    mem_kb: Optional[float]
    times_called: Optional[int]
    name: str = ""
    start_ms: Optional[float] = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NodeTypeSummary:
    """One row of the "Summary by node type" table (times in ms, shares in percent)."""

    node_type: str
    count: Optional[int]
    avg_ms: Optional[float]
    percent: Optional[float]
    cdf_percent: Optional[float]
    mem_kb: Optional[float]
    times_called: Optional[int]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class OpProfile:
    """The tables of one profiling block (initialization or the regular benchmark runs)."""

    run_order: List[OpRecord] = field(default_factory=list)
    top_by_time: List[OpRecord] = field(default_factory=list)
    by_node_type: List[NodeTypeSummary] = field(default_factory=list)
    nodes_executed: Optional[int] = None
    nodes_observed: Optional[int] = None
    timings: Optional[Distribution] = None

    def node_type_shares(self) -> Dict[str, float]:
        """Share of the total time per node type, in percent.

        Taken from the "Summary by node type" table when present; otherwise summed from the
        "Run Order" rows.
        """
        if self.by_node_type:
            return {row.node_type: row.percent or 0.0 for row in self.by_node_type}
        totals: Dict[str, float] = {}
        for row in self.run_order:
            totals[row.node_type] = totals.get(row.node_type, 0.0) + (row.avg_ms or 0.0)
        whole = sum(totals.values())
        return {k: (100.0 * v / whole if whole else 0.0) for k, v in totals.items()}

    def share(self, node_type: str) -> float:
        """Percent of the run time spent in ``node_type`` (0.0 if it does not occur)."""
        return self.node_type_shares().get(node_type, 0.0)

    def to_dict(self) -> dict:
        return {
            "node_type_shares": self.node_type_shares(),
            "by_node_type": [row.to_dict() for row in self.by_node_type],
            "top_by_time": [row.to_dict() for row in self.top_by_time],
            "run_order": [row.to_dict() for row in self.run_order],
            "nodes_executed": self.nodes_executed,
            "nodes_observed": self.nodes_observed,
            "timings": self.timings.to_dict() if self.timings else None,
        }


@dataclass
class BenchmarkLog:
    """Everything read from one benchmark run (microseconds unless the name ends in _ms / _mb)."""

    init_us: float
    first_inference_us: float
    warmup_avg_us: float
    inference_avg_us: float
    warmup: Optional[Distribution] = None
    timed: Optional[Distribution] = None
    model_size_mb: Optional[float] = None
    init_ms: Optional[float] = None
    memory_init_mb: Optional[float] = None
    memory_overall_mb: Optional[float] = None
    peak_memory_mb: Optional[float] = None
    parameters: Dict[str, str] = field(default_factory=dict)
    graph: Optional[str] = None
    errors: List[str] = field(default_factory=list)
    init_profile: Optional[OpProfile] = None
    op_profile: Optional[OpProfile] = None

    @property
    def inference_avg_ms(self) -> float:
        return self.inference_avg_us / 1000.0

    @property
    def num_threads(self) -> Optional[int]:
        value = self.parameters.get("Num threads")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    @property
    def use_indirect_bgemm(self) -> Optional[bool]:
        return _flag(self.parameters.get("Use indirect BGEMM"))

    @property
    def use_xnnpack(self) -> Optional[bool]:
        return _flag(self.parameters.get("Use xnnpack"))

    def to_dict(self) -> dict:
        out = {
            "init_us": self.init_us,
            "first_inference_us": self.first_inference_us,
            "warmup_avg_us": self.warmup_avg_us,
            "inference_avg_us": self.inference_avg_us,
            "inference_avg_ms": self.inference_avg_ms,
            "warmup": self.warmup.to_dict() if self.warmup else None,
            "timed": self.timed.to_dict() if self.timed else None,
            "model_size_mb": self.model_size_mb,
            "init_ms": self.init_ms,
            "memory_init_mb": self.memory_init_mb,
            "memory_overall_mb": self.memory_overall_mb,
            "peak_memory_mb": self.peak_memory_mb,
            "parameters": dict(self.parameters),
            "graph": self.graph,
            "errors": list(self.errors),
        }
        if self.op_profile is not None:
            out["op_profile"] = self.op_profile.to_dict()
        return out


def _flag(value: Optional[str]) -> Optional[bool]:
    if value is None:
        return None
    return value.strip().lower() in ("1", "true", "yes")


def _header_key(cell: str) -> str:
    return " ".join(cell.strip().strip("[]").lower().split()).replace(" %", "%")


def _cell_float(text: Optional[str]) -> Optional[float]:
    if text is None:
        return None
    text = text.strip().rstrip("%")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _cell_int(text: Optional[str]) -> Optional[int]:
    value = _cell_float(text)
    return None if value is None or math.isnan(value) else int(value)


def _table_row(header: List[str], line: str) -> Optional[Dict[str, str]]:
    cells = line.split("\t")
    if len(cells) < 3:
        return None
    if len(cells) > len(header):  # a name containing a tab: keep it whole
        cells = cells[: len(header) - 1] + ["\t".join(cells[len(header) - 1 :])]
    return {key: cell.strip() for key, cell in zip(header, cells)}


def _op_record(row: Dict[str, str]) -> Optional[OpRecord]:
    node_type = row.get("node type", "")
    if not node_type:
        return None
    return OpRecord(
        node_type=node_type,
        start_ms=_cell_float(row.get("start")),
        first_ms=_cell_float(row.get("first")),
        avg_ms=_cell_float(row.get("avg ms")),
        percent=_cell_float(row.get("%")),
        cdf_percent=_cell_float(row.get("cdf%")),
        mem_kb=_cell_float(row.get("mem kb")),
        times_called=_cell_int(row.get("times called")),
        name=row.get("name", ""),
    )


def _node_type_row(row: Dict[str, str]) -> Optional[NodeTypeSummary]:
    node_type = row.get("node type", "")
    if not node_type:
        return None
    return NodeTypeSummary(
        node_type=node_type,
        count=_cell_int(row.get("count")),
        avg_ms=_cell_float(row.get("avg ms")),
        percent=_cell_float(row.get("avg%")),
        cdf_percent=_cell_float(row.get("cdf%")),
        mem_kb=_cell_float(row.get("mem kb")),
        times_called=_cell_int(row.get("times called")),
    )


class _ProfileReader:
    """Line-by-line state machine for the op-profiling blocks."""

    def __init__(self) -> None:
        self.profile: Optional[OpProfile] = None
        self.table: Optional[str] = None
        self.header: Optional[List[str]] = None

    def start(self) -> OpProfile:
        self.profile = OpProfile()
        self.table = None
        self.header = None
        return self.profile

    def feed(self, line: str) -> bool:
        """Consume ``line`` if it belongs to the current profile; return whether it did."""
        if self.profile is None:
            return False
        title = _TABLE_TITLE.match(line)
        if title:
            self.table = title.group("title").strip().lower()
            self.header = None
            return True
        if self.table is not None and self.header is None and "[" in line and "\t" in line:
            self.header = [_header_key(cell) for cell in line.split("\t")]
            return True
        if self.table is not None and self.header is not None and line.startswith("\t"):
            row = _table_row(self.header, line)
            if row is not None:
                if self.table.startswith("summary by node type"):
                    record = _node_type_row(row)
                    if record:
                        self.profile.by_node_type.append(record)
                else:
                    record = _op_record(row)
                    if record:
                        target = (
                            self.profile.run_order
                            if self.table.startswith("run order")
                            else self.profile.top_by_time
                        )
                        target.append(record)
            return True
        if not line.strip():
            self.table, self.header = None, None
            return True
        match = _NODES_EXECUTED.search(line)
        if match:
            self.profile.nodes_executed = int(match.group("n"))
            return True
        match = _PROFILE_TIMINGS.search(line)
        if match:
            self.profile.timings = parse_distribution(match.group("rest"))
            return True
        match = _NODES_OBSERVED.match(line)
        if match:
            self.profile.nodes_observed = int(match.group("n"))
            return True
        return line.startswith("Memory (bytes):")


def parse_benchmark_log(text: str) -> BenchmarkLog:
    """Parse the merged stdout / stderr of one `lce_benchmark_model` run.

    # Arguments
        text: the tool's output; ``INFO: `` and logcat prefixes, ``\\r`` and elision lines are
            tolerated.

    # Returns
        A :class:`BenchmarkLog`. ``ERROR:`` lines are collected in ``errors`` (the caller decides
        whether they are fatal; :func:`larq_poke.bench.adb` treats them as a failed run).

    # Raises
        BenchmarkLogError: if the ``Inference timings in us:`` summary line is missing.
    """
    summary = None
    distributions: List[Distribution] = []
    headers_seen = 0
    dist_slots: Dict[str, Distribution] = {}
    values: Dict[str, float] = {}
    parameters: Dict[str, str] = {}
    graph = None
    errors: List[str] = []
    profiles = _ProfileReader()
    init_profile = op_profile = None

    for raw in text.splitlines():
        line = strip_prefixes(raw)
        stripped = line.strip()
        if stripped.startswith(("ERROR:", "FATAL:")):
            errors.append(stripped)
            continue
        if _INIT_PROFILE.search(line):
            init_profile = profiles.start()
            continue
        if _RUN_PROFILE.search(line):
            op_profile = profiles.start()
            continue
        if profiles.feed(line):
            continue

        match = _SUMMARY.search(line)
        if match:
            summary = match
            continue
        match = _RUNNING.search(line)
        if match:
            headers_seen += 1
            continue
        if _COUNT_LINE.match(line):
            dist = parse_distribution(line)
            distributions.append(dist)
            # The statistics line following the n-th "Running benchmark" header: 1 = warm-up,
            # 2 = timed runs. Without headers, fall back to the order of appearance.
            slot = {1: "warmup", 2: "timed"}.get(headers_seen or len(distributions))
            if slot and slot not in dist_slots:
                dist_slots[slot] = dist
            continue
        for key, pattern in (
            ("model_size_mb", _MODEL_SIZE),
            ("init_ms", _INIT_TIME),
            ("peak_memory_mb", _PEAK_MEMORY),
        ):
            match = pattern.search(line)
            if match:
                values[key] = _number(match.group("v"))
                break
        else:
            match = _MEMORY.search(line)
            if match:
                values["memory_init_mb"] = _number(match.group("init"))
                values["memory_overall_mb"] = _number(match.group("overall"))
                continue
            match = _PARAM_ECHO.match(stripped)
            if match:
                parameters[match.group("name")] = match.group("value")
                if match.group("name") == "Graph":
                    graph = match.group("value")
                continue
            match = _LOADED.match(stripped)
            if match and graph is None:
                graph = match.group("path")

    if summary is None:
        detail = f" (errors: {'; '.join(errors[-3:])})" if errors else ""
        raise BenchmarkLogError(
            "benchmark output has no 'Inference timings in us:' summary line; the run did not "
            f"complete{detail}"
        )
    return BenchmarkLog(
        init_us=_number(summary.group("init")),
        first_inference_us=_number(summary.group("first")),
        warmup_avg_us=_number(summary.group("warmup")),
        inference_avg_us=_number(summary.group("avg")),
        warmup=dist_slots.get("warmup"),
        timed=dist_slots.get("timed"),
        parameters=parameters,
        graph=graph,
        errors=errors,
        init_profile=init_profile,
        op_profile=op_profile,
        **values,
    )
