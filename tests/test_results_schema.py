"""The results schema: one owner that builds, validates, writes and loads; the shipped JSON Schema,
the docs and every committed results file agree with it; v1 files still load."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from vidtok_bench import results as R
from vidtok_bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_json_schema_is_generated_from_the_models():
    assert json.loads(R.SCHEMA_FILE.read_text()) == json.loads(json.dumps(R.json_schema()))


def test_every_committed_result_validates_against_the_shipped_schema():
    schema = json.loads(R.SCHEMA_FILE.read_text())
    files = sorted((ROOT / "results").rglob(R.RESULTS_FILE))
    assert len(files) >= 12
    for f in files:
        jsonschema.validate(json.loads(f.read_text()), schema)
        r = R.load_result(f)
        assert r.tokenizer.family and all(m.info.label for m in r.metrics.values())


def test_docs_field_list_is_the_schema_s():
    text = (ROOT / "docs" / "results.md").read_text()
    start, end = "<!-- schema:start -->", "<!-- schema:end -->"
    block = text[text.index(start) + len(start):text.index(end)]
    assert block.strip() == R.field_table().strip(), "run: python -m vidtok_bench.results docs docs/results.md"


def test_v1_results_load_with_values_and_metric_facts_from_the_metric(tmp_path):
    v1 = {
        "schema": "vidtok-bench/results/v1",
        "tokenizer": {"name": "h264_crf28", "plugin": "codec", "compression": [1, 1, 1], "causal": False,
                      "frame_rule": "any frame count", "latent_channels": 3, "codebook_size": None,
                      "bits_per_element": 16, "nominal_bits_per_pixel": None, "weights": {},
                      "config": {"plugin": "codec", "codec": "h264", "crf": 28, "name": "h264"}},
        "dataset": {"name": "d", "plugin": "folder", "preprocess": {}, "config": {}},
        "protocol": {"name": "vidtok", "score_tail_frames": True},
        "metrics": {"psnr": {"mean": 31.5, "frames": 17, "clips": 1, "videos": 1, "spec": {}, "higher_is_better": True},
                    "fvd": {"value": 12.0, "clips": 2, "spec": {}, "higher_is_better": False, "reference_cache_hits": 1}},
        "bits_per_pixel": 0.1, "compression": [1, 1, 1],
        "throughput": {"encode_s": 1.0, "decode_s": 1.0, "clips": 1, "frames": 17, "encode_frames_per_s": 17.0,
                       "decode_frames_per_s": 17.0, "frames_per_s": 8.5, "clips_per_s": 0.5, "note": ""},
        "memory": {"peak_bytes": 1, "kind": "peak_rss"},
        "frames": {"evaluated": 17, "tokenizer_padded": 0, "tail_repeated": 0},
        "videos": {"total": 1, "ok": 1, "failed": []},
        "run": {"device": "cpu", "precision": "fp32", "batch_size": 1, "seed": 42, "date": "2026-01-01", "duration_s": 1.0},
        "environment": {}, "config": {}, "fingerprint": {"data": "d", "config": "c"},
    }
    (tmp_path / "results.json").write_text(json.dumps(v1))
    r = R.load_result(tmp_path)
    assert r.value("psnr") == 31.5 and r.value("fvd") == 12.0
    assert r.info("psnr").label == "PSNR" and r.info("fvd").kind == "set" and r.info("fvd").tolerance == "2%"
    assert r.metrics["fvd"].details == {"reference_cache_hits": 1}
    assert r.scoring.tail_frames == "scored" and r.tokenizer.family == "h264"
    R.migrate(tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["schema"] == R.SCHEMA


@pytest.mark.parametrize("mutate, text", [
    (lambda d: d.pop("metrics"), "metrics: Field required"),
    (lambda d: d["metrics"]["psnr"]["info"].update(kind="pixel"), "metrics.psnr.info.kind"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.update(schema="vidtok-bench/results/v9"), "expected 'vidtok-bench/results/v2'"),
])
def test_invalid_results_are_one_line_errors_naming_the_field(tmp_path, mutate, text):
    from report_fakes import simple_run

    run = simple_run(tmp_path / "r")
    data = json.loads((run / "results.json").read_text())
    mutate(data)
    (run / "results.json").write_text(json.dumps(data))
    with pytest.raises(BenchError, match=text) as exc:
        R.load_result(run)
    assert "\n" not in str(exc.value)


def test_torn_per_clip_line_is_skipped(tmp_path):
    rec = R.VideoRecord(video="v0", path=None)
    (tmp_path / R.PER_CLIP_FILE).write_text(R.record_line(rec) + R.record_line(rec)[:10])
    assert [r.video for r in R.read_records(tmp_path / R.PER_CLIP_FILE)] == ["v0"]


def test_undecodable_per_clip_lines_are_skipped_and_the_rest_kept(tmp_path):
    rec = [R.record_line(R.VideoRecord(video=f"v{i}", path=None)).encode() for i in range(3)]
    (tmp_path / R.PER_CLIP_FILE).write_bytes(rec[0] + b"\xff\xfe garbage\n" + rec[1] + b"\xc3" + rec[2][:-1])
    assert [r.video for r in R.read_records(tmp_path / R.PER_CLIP_FILE)] == ["v0", "v1", "v2"]


def test_a_record_appended_to_a_torn_last_line_is_kept(tmp_path):
    """A run resumed after a torn last line (no newline) appends its next record to that line."""
    rec = [R.record_line(R.VideoRecord(video=f"v{i}", path=None, manifest={"video": "x"})) for i in range(3)]
    (tmp_path / R.PER_CLIP_FILE).write_text(rec[0] + rec[1][:-20] + rec[2])
    assert [r.video for r in R.read_records(tmp_path / R.PER_CLIP_FILE)] == ["v0", "v2"]
