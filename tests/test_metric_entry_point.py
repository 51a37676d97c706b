"""Adding a metric is one file: a third-party metric registered only through an entry point appears
in run, table, compare, gate and rd with its own declared facts, and no other edit."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest

from vidtok_bench.cli import main
from vidtok_bench.registry import METRICS

TOY = '''
import torch
from vidtok_bench.metrics.base import FrameMetric
from vidtok_bench.results import MetricInfo


class ToyMetric(FrameMetric):
    """Mean absolute error per frame, in [-1,1] units."""

    info = MetricInfo(label="ToyMAE", unit="u", higher_is_better=False, precision=3, tolerance="0.25",
                      kind="frame", reduction="mean over frames")

    def __init__(self, device="cpu", scale: float = 1.0):
        super().__init__(device=device)
        self.scale = scale

    def per_frame(self, real, fake):
        return (real.double() - fake.double()).abs().mean(dim=(1, 3, 4)).cpu() * self.scale

    def spec(self):
        return {"name": "toy", "scale": self.scale}
'''


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "toy_metric-0.1.dist-info").mkdir(parents=True)
    (site / "toy_metric.py").write_text(textwrap.dedent(TOY))
    (site / "toy_metric-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-metric\nVersion: 0.1\n")
    (site / "toy_metric-0.1.dist-info" / "entry_points.txt").write_text("[vidtok_bench.metrics]\ntoy = toy_metric:ToyMetric\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(METRICS, "_loaded", False)
    yield
    METRICS._plugins.pop("toy", None)
    sys.modules.pop("toy_metric", None)


def test_entry_point_metric_flows_through_every_command(tmp_path, toy_plugin, capsys):
    common = ["dataset=synthetic", "dataset.num_videos=2", "dataset.num_frames=17", "dataset.size=32",
              "dataset.height=32", "dataset.width=32", "metrics=[psnr,toy]", "progress=false", "device=cpu"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "tokenizer=trilinear_488", *common, f"output_dir={a}"]) == 0
    assert main(["run", "tokenizer=trilinear_488", "tokenizer.h=4", "tokenizer.w=4", *common, f"output_dir={b}"]) == 0
    res = json.loads((a / "results.json").read_text())
    assert res["metrics"]["toy"]["info"]["label"] == "ToyMAE" and res["metrics"]["toy"]["value"] > 0
    assert "toy" in (a / "per_video.csv").read_text().splitlines()[0]
    capsys.readouterr()

    assert main(["table", str(a), str(b), "--columns", "toy", "psnr", "--sort", "toy"]) == 0
    out = capsys.readouterr().out
    assert "ToyMAE (u) ↓"  # label and unit as the plugin declares them in out
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and ("better" in out or "worse" in out)
    assert main(["gate", "--baseline", str(a), "--current", str(a)]) == 0
    out = capsys.readouterr().out
    toy_row = next(line for line in out.splitlines() if line.startswith("toy"))
    assert "lower" in toy_row and "0.25" in toy_row  # the metric's own direction and default tolerance
    assert main(["rd", str(a), str(b), "--metrics", "toy", "-o", str(tmp_path / "rd")]) == 0
    assert "ToyMAE (u)" in (tmp_path / "rd" / "rd_toy.svg").read_text()


def test_entry_point_metric_options_are_checked(tmp_path, toy_plugin, capsys):
    code = main(["run", "metrics=[toy]", "protocol.metric_options.toy.scal=2", "progress=false", f"output_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and "'scal'" in err and "did you mean 'scale'" in err
