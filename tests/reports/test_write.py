"""Report content: every section present or saying why not, plots embedded, text escaped."""

import base64
import json
import re

import pytest

from tst_bench.reports import load_inputs, write_report
from tst_bench.reports.plots import wrapped
from tst_bench.verdict import judge, verdict_of

from ..helpers import run_cli
from .conftest import with_measurements

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)]


@pytest.fixture(scope="module")
def run_report(recorded, tmp_path_factory):
    return write_report([recorded.run_dir], tmp_path_factory.mktemp("report"))


def test_run_report_has_scores_folds_and_bias_plots_and_says_what_is_missing(recorded, run_report):
    html = run_report.html.read_text()
    markdown = run_report.markdown.read_text()
    assert [path.name for path in run_report.figures] == [
        "verdict-scores.png",
        "00-run-folds.png",
        "00-run-bias.png",
    ]
    pngs = embedded_pngs(html)
    assert len(pngs) == 3 and all(png.startswith(PNG_MAGIC) for png in pngs)
    assert [path.read_bytes() for path in run_report.figures] == pngs
    for path in run_report.figures:
        assert f"](figures/{path.name})" in markdown
    result = recorded.result
    for text in (html, markdown):
        assert f"{result.score:.3f} ± {result.score_std:.3f}" in text
        assert f"{result.ci95[0]:.3f}–{result.ci95[1]:.3f}" in text
        assert "no speedup series in this input" in text
        assert "no memory samples recorded" in text
        assert "this input records no commit, package versions or hardware" in text
        assert "Report environment" in text


def test_the_report_opens_with_the_verdict_per_dataset(recorded, run_report):
    result = recorded.result
    markdown = run_report.markdown.read_text()
    sections = re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)
    assert sections[:2] == ["Your benchmark: non-visual signal per dataset", "Every run"]
    first = markdown.split("\n## ")[1]
    dataset = result.dataset.replace("&", "&amp;")  # as Markdown shows it
    row = next(line for line in first.splitlines() if line.startswith(f"| {dataset} |"))
    cells = [cell.strip() for cell in row.strip("|").split(" | ")]
    assert cells[:5] == [
        dataset,
        "tiny",
        "hf/peft",
        "accuracy",
        f"{result.score:.3f} [{result.ci95[0]:.3f}, {result.ci95[1]:.3f}]",
    ]
    assert cells[-2:] == ["1", verdict_of(result).text]
    assert "Figures from: synthetic:shortcut?rows=120&amp;seed=2 / tiny / hf/peft: run." in first


def test_memory_and_speed_measurements_are_not_judged_in_the_verdict(recorded, tmp_path):
    document = json.loads(recorded.benchmark_json.read_text())
    measured = json.loads(json.dumps(document["benchmarks"][0]))
    measured["name"] = "test_memory_released"
    measured["extra_info"]["tst_measures"] = "memory"
    measured["extra_info"]["tst_result"]["dataset"] = "synthetic:shortcut?rows=160"
    both = {**document, "benchmarks": [document["benchmarks"][0], measured]}
    verdict_section = write_report([both], tmp_path / "out").markdown.read_text().split("\n## ")[1]
    assert "test_tst_shortcut" in verdict_section and "rows=160 |" not in verdict_section
    assert "not judged here, they measure memory or speed: test_memory_released" in verdict_section
    alone = {**document, "benchmarks": [measured]}  # nothing else to judge: the measurement is
    assert "rows=160 |" in write_report([alone], tmp_path / "alone").markdown.read_text().split("\n## ")[1]


@pytest.mark.parametrize(
    ("ci95", "expected"),
    [
        ((0.44, 0.58), "TsT 0.51 [0.44, 0.58] vs majority 0.27: non-visual signal, +24 points"),
        ((0.20, 0.82), "TsT 0.51 [0.20, 0.82] vs majority 0.27: no non-visual signal at 95% (+24 points,"
                       " CI reaches majority)"),
    ],
)  # fmt: skip
def test_verdict_sets_the_ci_against_the_higher_of_majority_and_chance(recorded, ci95, expected):
    baselines = recorded.result.baselines.model_copy(update={"majority": 0.27, "chance": 0.25})
    assert judge(0.51, ci95, baselines).text == expected
    below = judge(0.20, (0.15, 0.25), baselines)
    assert below.text.endswith("no non-visual signal, below majority (-7 points)")
    assert below.signal == "below" and below.floor_name == "majority" and below.points == pytest.approx(-7)


def test_most_biased_table_lists_the_highest_s_x_with_question_and_answer(recorded, run_report):
    (benchmark,) = load_inputs([recorded.run_dir])
    ranked = sorted(benchmark.samples, key=lambda s: (-s.bias_score, s.id))
    markdown = run_report.markdown.read_text()
    rows = [line for line in markdown.splitlines() if re.match(r"\| \d+ \| shortcut-", line)]
    assert len(rows) == 10
    for row, sample in zip(rows, ranked[:10], strict=True):
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        record = benchmark.questions[sample.id]
        option = record.options[record.letters.index(sample.target)]
        assert cells[1:] == [sample.id, record.question, f"{sample.target}: {option}", sample.prediction,
                             f"{sample.bias_score:.3f}"]  # fmt: skip


def test_measured_benchmark_json_adds_speedup_and_memory(recorded, tmp_path):
    measured = with_measurements(recorded, tmp_path / "measured.json", retained_mib=700)
    files = write_report([measured], tmp_path / "out")
    names = [path.name for path in files.figures]
    assert names == [
        "verdict-scores.png",
        "00-test-tst-shortcut-folds.png",
        "00-test-tst-shortcut-bias.png",
        "00-test-tst-shortcut-speedup.png",
        "00-test-tst-shortcut-memory.png",
    ]
    html = files.html.read_text()
    assert len(embedded_pngs(html)) == 5
    assert "memory not released after clean-up in 1 of 3 folds" in html
    assert '<td>r0_f2</td><td>cuda:0</td><td class="num">1200</td>' in html
    assert '+700</td><td class="num">256</td><td>no</td>' in html
    assert "90%" in html and "test fixture" in html  # 1.8x on 2 GPUs against the ideal 2x
    assert "pytest-benchmark timing" in html and "machine python_version" in html
    assert "no memory samples recorded" not in html and "no speedup series" not in html


def test_rss_memory_is_shown_with_a_note_and_not_judged(recorded, tmp_path):
    measured = with_measurements(recorded, tmp_path / "rss.json", source="rss", retained_mib=700)
    html = write_report([measured], tmp_path / "out").html.read_text()
    assert "NVML not available; RSS shown" in html
    assert "not checked (RSS)" in html and "memory not released" not in html


def test_timing_only_benchmark_and_plugin_style_document(recorded, tmp_path):
    document = json.loads(recorded.benchmark_json.read_text())
    document["benchmarks"][0]["extra_info"] = {}
    files = write_report([document], tmp_path / "out")
    html = files.html.read_text()
    assert "no input carries a TsT result: only timings are shown" in html
    assert "no TsT result in this benchmark&#x27;s extra_info" in html
    assert embedded_pngs(html) == [] and files.figures == ()


def test_text_from_the_data_is_escaped(recorded, tmp_path):
    (benchmark,) = load_inputs([recorded.run_dir])
    top = min(benchmark.samples, key=lambda s: (-s.bias_score, s.id))
    hostile = benchmark.questions[top.id].model_copy(update={"question": "<script>alert(1)</script> a | b"})
    edited = benchmark.model_copy(update={"questions": {**benchmark.questions, top.id: hostile}})
    files = write_report([edited], tmp_path / "out")
    assert "<script>" not in files.html.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a | b" in files.html.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a \\| b" in files.markdown.read_text()


def test_report_command(recorded, tmp_path):
    out = tmp_path / "reports"
    completed = run_cli(
        "report", str(recorded.run_dir), str(recorded.benchmark_json), "--out", str(out), "--top", "3"
    )
    assert completed.returncode == 0, completed.stderr
    assert f"report: {out / 'report.html'}" in completed.stdout
    assert len(embedded_pngs((out / "report.html").read_text())) == 5  # verdict + 2 x (folds, bias)
    missing = run_cli("report", str(tmp_path / "nowhere"), "--out", str(out))
    assert missing.returncode == 2 and "nowhere: no such file or directory" in missing.stderr


@pytest.mark.parametrize(
    "name",
    [
        "synthetic:shortcut?rows=120&seed=2\ntiny, hf/peft",
        "/data/benchmarks/my_very_long_benchmark_file_name.jsonl\nsmollm2-135m, vllm/llamafactory",
    ],
)
def test_tick_labels_are_wrapped_not_clipped(name):
    label = wrapped(name)
    assert "".join(label.split()) == "".join(name.split())
    assert max(len(line) for line in label.splitlines()) <= 24
