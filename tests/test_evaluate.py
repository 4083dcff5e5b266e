"""`repro evaluate` and its readers on small inline runs and qrels: output forms and every user error."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from repro.cli import cli
from repro.errors import BadInputError, ReproError
from repro.evaluate.evaluation import evaluate
from repro.formats.qrels import read_qrels
from repro.formats.runs import read_run, write_run

QRELS = "1 0 a 1\n1 0 b 0\n2 0 c 2\n2 0 d 1\n3 0 e 1\n"
RUN = (
    "1 Q0 a 1 3.0 t\n1 Q0 b 2 2.0 t\n1 Q0 x 3 1.0 t\n"
    "2 Q0 x 1 3.0 t\n2 Q0 c 2 2.0 t\n2 Q0 d 3 1.0 t\n"
    "3 Q0 y 1 3.0 t\n3 Q0 z 2 2.0 t\n3 Q0 e 3 1.0 t\n"
)


@pytest.fixture
def files(tmp_path):
    def make(run: str | bytes = RUN, qrels: str = QRELS, name: str = "run.trec") -> tuple[Path, Path]:
        run_path, qrels_path = tmp_path / name, tmp_path / "qrels.txt"
        run_path.write_bytes(run if isinstance(run, bytes) else run.encode())
        qrels_path.write_text(qrels)
        return run_path, qrels_path

    return make


def invoke(*args: str):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def test_table_output(files):
    run, qrels = files()
    result = invoke(run, "--qrels", qrels, "-m", "RR P@1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["RR", "P@1"]
    assert lines[-1].split()[1:] == ["0.6111", "0.3333"]  # RR: (1 + 1/2 + 1/3) / 3


def test_csv_output_two_runs(files, tmp_path):
    run, qrels = files()
    other, _ = files(RUN.replace("1 Q0 a 1 3.0", "1 Q0 a 1 0.5"), name="other.trec")
    result = invoke(run, other, "--qrels", qrels, "-m", "RR", "--format", "csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout), index_col="run")
    assert list(table.index) == [str(run), str(other)]
    assert table.loc[str(run), "RR"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert table.loc[str(other), "RR"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 3) / 3)


def test_json_per_query(files):
    run, qrels = files()
    result = invoke(run, "--qrels", qrels, "-m", "RR", "-m", "nDCG@10", "--format", "json", "--per-query")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["measures"] == ["RR", "nDCG@10"]
    per_query = out["runs"][str(run)]["per_query"]
    assert per_query["1"]["RR"] == 1.0 and per_query["2"]["RR"] == 0.5 and per_query["3"]["RR"] == pytest.approx(1 / 3)
    assert out["runs"][str(run)]["aggregate"]["RR"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_per_query_table_has_all_row(files):
    run, qrels = files()
    result = invoke(run, "--qrels", qrels, "-m", "RR", "--per-query", "--format", "csv")
    table = pd.read_csv(io.StringIO(result.stdout), dtype={"query": str})
    assert list(table["query"]) == ["1", "2", "3", "all"]


def test_default_measures_and_keys(files):
    run, qrels = files()
    out = json.loads(invoke(run, "--qrels", qrels, "--format", "json").stdout)
    assert out["measures"] == ["RR@10", "R@1000", "nDCG@10"]
    assert out["depth"] == 1000
    assert "have fewer than 1000 documents" in " ".join(out["warnings"])


def test_measure_keys_are_ir_measures_strings(files):
    run, qrels = files()
    out = json.loads(invoke(run, "--qrels", qrels, "-m", "AP(rel=2) MRR@10 P(rel=2)@5", "--format", "json").stdout)
    assert out["measures"] == ["AP(rel=2)", "RR@10", "P(rel=2)@5"]
    assert out["runs"][str(run)]["aggregate"]["AP(rel=2)"] == pytest.approx(0.5 / 3)  # only query 2 has rel>=2: c at 2


def test_malformed_run_line_names_file_and_line(files):
    run, qrels = files(RUN.replace("1 Q0 x 3 1.0 t\n", "1 Q0 x 3 1.0\n"))
    result = invoke(run, "--qrels", qrels)
    assert result.exit_code == 2
    assert "run.trec:3: expected 6 whitespace-separated columns" in result.output
    assert "Traceback" not in result.output


def test_cli_error_format_via_entry_point(files):
    run, qrels = files(RUN.replace("2 Q0 c 2 2.0 t", "2 Q0 c 2 high t"))
    proc = subprocess.run(
        [sys.executable, "-c", "from repro.cli import main; main()", "evaluate", str(run), "--qrels", str(qrels)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {run}:5: score (column 5) is not a number: 'high'"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("2 Q0 c 2 nan t", "run.trec:5: score (column 5) is 'nan'"),
        ("2 Q0 c 2 -inf t", "run.trec:5: score (column 5) is '-inf'"),
        ("2 Q0 c 2 2.0 t extra", "run.trec:5: expected 6 whitespace-separated columns"),
        ("2  c 2 2.0 t", "run.trec:5: expected 6 whitespace-separated columns"),
        ("2 Q0 c 2 2.0 t ", None),  # a trailing space is still six whitespace-separated columns
        ("2\tQ0\tc\t2\t2.0\tt", None),  # tabs too
    ],
)
def test_run_line_checks(files, bad, message):
    run, qrels = files(RUN.replace("2 Q0 c 2 2.0 t", bad))
    result = invoke(run, "--qrels", qrels, "-m", "RR")
    if message is None:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2 and message in result.output, result.output


def test_duplicate_doc_names_both_lines(files):
    run, qrels = files(RUN.replace("2 Q0 d 3 1.0 t", "2 Q0 c 3 1.0 t"))
    result = invoke(run, "--qrels", qrels)
    assert result.exit_code == 2
    assert "run.trec:6: duplicate document 'c' for query '2' (lines 5 and 6)" in result.output
    with pytest.raises(BadInputError, match="lines 5 and 6"):
        read_run(run)


def test_duplicate_doc_found_when_only_top_k_is_evaluated(files):
    lines = RUN.splitlines()
    run, qrels = files("\n".join(lines[:3] + ["1 Q0 extra 4 0.5 t", "1 Q0 a 5 0.1 t"] + lines[3:]) + "\n")
    result = invoke(run, "--qrels", qrels, "-m", "RR@1")  # only the top document is looked at
    assert result.exit_code == 2 and "duplicate document 'a' for query '1' (lines 1 and 5)" in result.output


def test_non_utf8_names_line(files):
    run, qrels = files(RUN.encode().replace(b"3 Q0 y", b"3 Q0 \xff"))
    result = invoke(run, "--qrels", qrels)
    assert result.exit_code == 2 and "run.trec:7: not valid UTF-8 (byte 0xff" in result.output


def test_empty_run_is_an_error(files):
    run, qrels = files("\n")
    result = invoke(run, "--qrels", qrels)
    assert result.exit_code == 2 and "empty run file" in result.output


def test_malformed_qrels_line(files):
    run, qrels = files(qrels=QRELS.replace("2 0 c 2", "2 0 c high"))
    result = invoke(run, "--qrels", qrels)
    assert result.exit_code == 2 and "qrels.txt:3: relevance (column 4) is not an integer: 'high'" in result.output
    run, qrels = files(qrels=QRELS + "4 0 f\n")
    result = invoke(run, "--qrels", qrels)
    assert result.exit_code == 2 and "qrels.txt:6: expected 4 whitespace-separated columns" in result.output


def test_duplicate_qrels_line(files):
    run, qrels = files(qrels=QRELS + "1 0 a 0\n")
    result = invoke(run, "--qrels", qrels)
    assert result.exit_code == 2 and "qrels.txt:6: duplicate judgement of document 'a' for query '1' (lines 1 and 6)" in result.output


def test_no_common_query_is_an_error_not_zero(files):
    run, qrels = files(RUN.replace("1 Q0", "91 Q0").replace("2 Q0", "92 Q0").replace("3 Q0", "93 Q0"))
    result = invoke(run, "--qrels", qrels, "--format", "csv")
    assert result.exit_code == 2
    assert "no query in common with the qrels" in result.output
    assert "0.0" not in result.stdout


def test_missing_queries_count_as_zero_with_warning(files):
    run, qrels = files("".join(line + "\n" for line in RUN.splitlines() if not line.startswith("3 ")))
    result = invoke(run, "--qrels", qrels, "-m", "RR", "--format", "json")
    assert result.exit_code == 0
    assert "1 of 3 qrels queries are not in the run; they count as 0" in result.stderr
    assert json.loads(result.stdout)["runs"][str(run)]["aggregate"]["RR"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_unjudged_run_queries_are_ignored_with_warning(files):
    run, qrels = files(RUN + "9 Q0 a 1 1.0 t\n")
    result = invoke(run, "--qrels", qrels, "-m", "RR")
    assert result.exit_code == 0 and "1 run queries have no judgements and are ignored" in result.stderr


def test_truncated_run_warning(files):
    run, qrels = files()
    result = invoke(run, "--qrels", qrels, "-m", "P@2", "--depth", "3")
    assert result.exit_code == 0 and "fewer than" not in result.stderr
    result = invoke(run, "--qrels", qrels, "-m", "P@2", "--depth", "5")
    assert "3 of 3 evaluated queries have fewer than 5 documents (fewest: 3)" in result.stderr


def test_bad_measure_string(files):
    run, qrels = files()
    for bad in ("XYZ@10", "nDCG(foo=1)@10", "RR@"):
        result = invoke(run, "--qrels", qrels, "-m", bad)
        assert result.exit_code == 2, bad
        assert f"bad measure '{bad}'" in result.output and len(result.output.strip().splitlines()) == 1


def test_qrels_file_not_found(files, tmp_path):
    run, _ = files()
    result = invoke(run, "--qrels", tmp_path / "nope.txt")
    assert result.exit_code == 2 and "qrels file not found" in result.output


def test_irds_offline_gives_clear_error(files, monkeypatch, tmp_path):
    """Simulate no network: whatever ir_datasets tries to fetch fails at once, as offline."""
    import ir_datasets.util.download as download

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve host (simulated: no network)")

    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds"))
    monkeypatch.setattr(download.RequestsDownload, "stream", offline)
    run, _ = files()
    result = invoke(run, "--qrels", "vaswani")
    assert result.exit_code == 2, result.output
    (error,) = [line for line in result.output.splitlines() if "could not provide" in line]
    assert "ir_datasets could not provide the qrels of 'vaswani'" in error
    assert "no network?" in error and "IR_DATASETS_HOME" in error


def test_irds_unknown_id(files):
    run, _ = files()
    result = invoke(run, "--qrels", "no-such-collection/dev")
    assert result.exit_code == 2 and "unknown ir_datasets ID 'no-such-collection/dev'" in result.output
    result = invoke(run, "--qrels", "qrels/dev.txt")  # a missing file, not an ID
    assert result.exit_code == 2 and "qrels/dev.txt: qrels file not found" in result.output


def test_cranfield_negative_relevance(files, tmp_path):
    run, qrels = files(qrels="1 0 a -1\n1 0 b 1\n2 0 c 3\n3 0 e -1\n")
    assert read_qrels(qrels).by_query["1"] == {"a": -1, "b": 1}
    out = json.loads(invoke(run, "--qrels", qrels, "-m", "RR", "--format", "json", "--per-query").stdout)
    per_query = out["runs"][str(run)]["per_query"]
    assert per_query["1"]["RR"] == 0.5  # a (-1) is not relevant, b is
    assert per_query["3"]["RR"] == 0.0


def test_pytrec_eval_provider_and_unsupported_measure(files):
    run, qrels = files()
    result = invoke(run, "--qrels", qrels, "-m", "RR@10", "--provider", "pytrec_eval", "--format", "json")
    assert result.exit_code == 0, result.output
    assert "trec_eval -M 10" in json.loads(result.stdout)["providers"]["RR@10"]
    result = invoke(run, "--qrels", qrels, "-m", "nDCG@10", "--provider", "msmarco")
    assert result.exit_code == 2 and "provider 'msmarco' does not compute nDCG@10" in result.output


def test_statistics_tables(files, tmp_path):
    run, qrels = files()
    other, _ = files(RUN.replace("1 Q0 a 1 3.0", "1 Q0 a 1 0.5"), name="other.trec")
    result = invoke(
        run, other, "--qrels", qrels, "-m", "RR", "--format", "json",
        "--subsample", "3", "--trials", "20", "--bootstrap", "200", "--significance", "--permutations", "500",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    sub = out["subsample"][0]
    assert sub["std"] == pytest.approx(0, abs=1e-12) and sub["mean"] == pytest.approx(out["runs"][str(run)]["aggregate"]["RR"])
    assert {row["run"] for row in out["bootstrap"]} == {str(run), str(other)}
    (sig,) = out["significance"]
    assert sig["baseline"] == str(run) and sig["run"] == str(other)
    assert sig["delta"] == pytest.approx((1 / 3 - 1) / 3)
    assert 0 < sig["p_randomization"] <= 1
    result = invoke(run, "--qrels", qrels, "--significance")
    assert result.exit_code == 2 and "at least two runs" in result.output


def test_library_fast_and_line_paths_agree(tmp_path):
    """The pyarrow path (single spaces) and the line reader (tabs) give the same run and values."""
    spaced, tabbed = tmp_path / "spaced.trec", tmp_path / "tabbed.trec"
    spaced.write_text(RUN)
    tabbed.write_text(RUN.replace(" ", "\t"))
    qrels = tmp_path / "qrels"
    qrels.write_text(QRELS)
    assert read_run(spaced).to_dict() == read_run(tabbed).to_dict()
    measures = ["RR", "RR@2", "nDCG@2", "AP", "R@2"]
    a, b = evaluate([spaced], qrels, measures), evaluate([tabbed], qrels, measures)
    assert a.runs[0].aggregate == b.runs[0].aggregate


def test_interleaved_queries_are_grouped(tmp_path):
    lines = RUN.splitlines()
    path = tmp_path / "mixed.trec"
    path.write_text("\n".join(lines[::2] + lines[1::2]) + "\n")
    assert read_run(path).to_dict() == read_run_text(tmp_path, RUN).to_dict()


def read_run_text(tmp_path: Path, text: str):
    path = tmp_path / "plain.trec"
    path.write_text(text)
    return read_run(path)


def test_pruned_top_k_matches_full_ranking(tmp_path):
    """Cutting each ranking below the k-th score (ties kept) leaves @k values unchanged."""
    import ir_measures
    import numpy as np

    rng = np.random.default_rng(1)
    lines, qrels = [], []
    for q in range(30):
        scores = rng.integers(0, 8, size=40)  # many ties on purpose
        for d, s in enumerate(scores):
            lines.append(f"q{q} Q0 d{d} {d + 1} {s} t")
        for d in rng.choice(40, size=4, replace=False):
            qrels.append(ir_measures.Qrel(f"q{q}", f"d{d}", int(rng.integers(1, 3))))
    path = tmp_path / "tied.trec"
    path.write_text("\n".join(lines) + "\n")
    qrels_path = tmp_path / "qrels"
    qrels_path.write_text("".join(f"{r.query_id} 0 {r.doc_id} {r.relevance}\n" for r in qrels))
    measures = ["RR@5", "nDCG@5", "P@3", "R@10", "AP@10", "RR(rel=2)@10"]
    ours = evaluate([path], qrels_path, measures).runs[0].aggregate
    plain = ir_measures.calc_aggregate([ir_measures.parse_measure(m) for m in measures], qrels, ir_measures.read_trec_run(str(path)))
    assert ours == pytest.approx({str(m): v for m, v in plain.items()})


def test_write_run_roundtrip_and_refuses_overwrite(tmp_path):
    path = tmp_path / "out.trec"
    rows = [("1", "a", 1, "2.500"), ("1", "b", 2, "1.250")]
    assert write_run(path, rows, "tag") == 2
    assert path.read_text() == "1 Q0 a 1 2.500 tag\n1 Q0 b 2 1.250 tag\n"
    assert read_run(path).to_dict() == {"1": {"a": 2.5, "b": 1.25}}
    with pytest.raises(ReproError, match="output exists"):
        write_run(path, rows, "tag")
    with pytest.raises(ReproError, match="contains whitespace"):
        write_run(tmp_path / "bad.trec", [("1", "a b", 1, "1.0")], "tag")
    assert not (tmp_path / "bad.trec").exists()
