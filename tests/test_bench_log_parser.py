"""The `lce_benchmark_model` output parser against the recorded samples (specs README section 4).

Expected values are transcribed from the "expected parse" column of the specs, not produced by the
parser.
"""


import pytest

from conftest import benchmark_sample_path

from larq_poke.bench.log_parser import (
    BenchmarkLogError,
    parse_benchmark_log,
    parse_distribution,
    strip_prefixes,
)



def _sample(name: str) -> str:
    return benchmark_sample_path(name).read_text()


# (init, first inference, warmup avg, inference avg) in microseconds, and latency in ms.
SUMMARIES = {
    "pokebnn_larq_1x_latency.txt": (326270, 1335104, 1335100, 1024910, 1024.91),
    "pokebnn_larq_1x_android_op_profile.txt": (326270, 1335104, 1335100, 1024910, 1024.91),
    "quicknet_rpi4b_getting_started.txt": (3501, 156677, 43268.1, 33071.8, 33.0718),
    "android_logcat_summary_line.txt": (92318, 235158, 211669, 145528, 145.528),
    "desktop_info_prefix_summary_line.txt": (21432, 91020, 60125.5, 31118.1, 31.1181),
}


@pytest.mark.parametrize("name", sorted(SUMMARIES))
def test_summary_line(name):
    init, first, warmup, avg, ms = SUMMARIES[name]
    log = parse_benchmark_log(_sample(name))
    assert log.init_us == init
    assert log.first_inference_us == first
    assert log.warmup_avg_us == pytest.approx(warmup, abs=1e-6)
    assert log.inference_avg_us == pytest.approx(avg, abs=1e-6)
    assert log.inference_avg_ms == pytest.approx(ms, rel=1e-12)
    assert log.errors == []


@pytest.mark.parametrize(
    "name", ["pokebnn_larq_1x_latency.txt", "pokebnn_larq_1x_android_op_profile.txt"]
)
def test_pokebnn_statistics(name):
    log = parse_benchmark_log(_sample(name))
    # Short warm-up form "count=1 curr=1335104".
    assert log.warmup.count == 1
    assert log.warmup.curr == 1335104
    assert log.warmup.first is None and log.warmup.avg is None and log.warmup.std is None
    timed = log.timed
    assert (timed.count, timed.first, timed.curr, timed.min, timed.max) == (
        50, 1026995, 1023140, 1019977, 1030168
    )
    assert timed.avg == 1.02491e06
    assert timed.std == 2197
    assert log.model_size_mb == 25.6724
    assert log.init_ms == 326.27
    assert log.memory_init_mb == 56.1523
    assert log.memory_overall_mb == 279.164
    assert log.graph == "PokeBNN_1x.tflite"


def test_quicknet_statistics():
    log = parse_benchmark_log(_sample("quicknet_rpi4b_getting_started.txt"))
    w, t = log.warmup, log.timed
    assert (w.count, w.first, w.curr, w.min, w.max, w.avg, w.std) == (
        12, 156677, 33205, 32578, 156677, 43268.1, 34197
    )
    assert (t.count, t.first, t.curr, t.min, t.max, t.avg, t.std) == (
        50, 33228, 33130, 32687, 33239, 33071.8, 129
    )
    assert log.model_size_mb == 3.34914
    assert log.init_ms == 3.501
    assert log.memory_init_mb is None
    assert log.op_profile is None


def test_op_profile():
    log = parse_benchmark_log(_sample("pokebnn_larq_1x_android_op_profile.txt"))
    profile = log.op_profile
    assert profile is not None
    expected_types = {
        "TfLiteXNNPackDelegate", "CONV_2D", "GREATER", "SELECT_V2", "LceQuantize", "LceBconv2d",
        "TILE", "STRIDED_SLICE", "TRANSPOSE",
    }
    assert set(profile.node_type_shares()) == expected_types
    # LceBconv2d is a small share of the run (about 14 %): 48 nodes, 13.837 %.
    assert profile.share("LceBconv2d") == pytest.approx(13.837)
    bconv = next(row for row in profile.by_node_type if row.node_type == "LceBconv2d")
    assert (bconv.count, bconv.avg_ms, bconv.times_called) == (48, 141.680, 48)
    assert profile.share("TfLiteXNNPackDelegate") == pytest.approx(59.217)
    assert profile.share("MEAN") == 0.0
    # The tool's own node count agrees with the rows read from the Run Order table.
    assert profile.nodes_executed == 375
    assert profile.nodes_observed == 375
    assert len(profile.run_order) == 375
    assert len(profile.top_by_time) == 10
    first = profile.run_order[0]
    assert first.node_type == "TfLiteXNNPackDelegate"
    assert (first.start_ms, first.first_ms, first.avg_ms) == (0.023, 2.924, 2.998)
    assert (first.percent, first.cdf_percent, first.times_called) == (0.293, 0.293, 1)
    assert first.name == "[model/quant_conv2d/poke_sign_2/Round;model/quant_c]:1409"
    assert profile.top_by_time[0].avg_ms == 25.741
    assert profile.timings.count == 50 and profile.timings.min == 1019182
    # The run profile's Timings line must not replace the benchmark's own distribution line.
    assert log.timed.min == 1019977
    # Initialization profile is kept apart.
    init = log.init_profile
    assert [row.node_type for row in init.by_node_type] == [
        "ModifyGraphWithDelegate", "AllocateTensors"
    ]
    assert init.timings.count == 1 and init.timings.curr == 319138
    assert log.parameters["Enable op profiling"] == "1"


def test_missing_summary_line_is_an_error():
    text = _sample("pokebnn_larq_1x_latency.txt")
    truncated = "\n".join(line for line in text.splitlines() if "Inference timings" not in line)
    with pytest.raises(BenchmarkLogError, match="Inference timings in us"):
        parse_benchmark_log(truncated)


def test_missing_summary_reports_tool_errors():
    text = (
        "INFO: STARTING!\n"
        "ERROR: larq_compute_engine/tflite/kernels/bconv2d.cc Grouped binary convolutions are not "
        "supported with this kernel.\n"
        "ERROR: Node number 1 (LceBconv2d) failed to prepare.\n"
        "ERROR: Benchmarking failed.\n"
    )
    with pytest.raises(BenchmarkLogError, match="Benchmarking failed"):
        parse_benchmark_log(text)


def test_prefixes_crlf_and_tf216_form():
    text = (
        "INFO: STARTING!\r\n"
        "INFO: Num threads: [4]\r\n"
        "INFO: Use indirect BGEMM: [1]\r\n"
        "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds\r\n"
        "INFO: count=3 curr=100(all same)\r\n"
        "\r\n"
        "INFO: Running benchmark for at least 50 iterations and at least 1 seconds\r\n"
        "INFO: count=50 first=20 curr=21 min=19 max=25 avg=21.5 std=1 p5=19 median=21 p95=24\r\n"
        "07-14 13:14:56.521 22838 22838 I tflite  : Inference timings in us: Init: 10, "
        "First inference: 100, Warmup (avg): 100, Inference (avg): 21.5\r\n"
        "INFO: Overall peak memory footprint (MB) via periodic monitoring: 12.5\r\n"
    )
    log = parse_benchmark_log(text)
    assert log.num_threads == 4 and log.use_indirect_bgemm is True
    assert log.warmup.all_same and log.warmup.min == 100 and log.warmup.std == 0.0
    assert log.timed.median == 21 and log.timed.extra["p95"] == 24
    assert log.inference_avg_us == 21.5
    assert log.peak_memory_mb == 12.5


def test_strip_prefixes():
    assert strip_prefixes("INFO: count=1 curr=5\r") == "count=1 curr=5"
    line = "07-14 13:14:56.521 22838 22838 I tflite  : Inference timings in us: Init: 1"
    assert strip_prefixes(line) == "Inference timings in us: Init: 1"
    assert strip_prefixes("07-14 13:14:56.521 1 2 E tflite  : boom") == "ERROR: boom"
    row = "07-14 13:14:56.521 1 2 I tflite  : \t  LceBconv2d\t    1.896"
    assert strip_prefixes(row) == "\t  LceBconv2d\t    1.896"


def test_distribution_count_zero():
    dist = parse_distribution("count=0")
    assert dist.count == 0 and dist.avg is None


@pytest.mark.parametrize(
    "prefix", ["INFO: ", "07-14 13:14:56.521 22838 22838 I tflite  : "], ids=["info", "logcat"]
)
def test_prefixed_op_profile_parses_the_same(prefix):
    text = _sample("pokebnn_larq_1x_android_op_profile.txt")
    prefixed = "".join(f"{prefix}{line}\r\n" for line in text.splitlines())
    log = parse_benchmark_log(prefixed)
    assert log.inference_avg_us == 1024910
    assert log.timed.count == 50 and log.timed.std == 2197
    assert log.memory_overall_mb == 279.164
    assert log.op_profile.share("LceBconv2d") == pytest.approx(13.837)
    assert len(log.op_profile.run_order) == 375
