"""The mixed-precision head (bf16 screen + fp32 recomputation) equals the fp32 head, weight for weight.

Only a one-unit flip is allowed, and only where w x factor lies within fp32's own summation-order
error of a .5 boundary (another product kernel adds the same terms in another order). Each flip
is counted and checked to be such a case.
"""

from __future__ import annotations

import json

import pytest

FACTOR = 100
BOUNDARY = 1e-3  # |w x factor - (k + .5)| below this is "at a .5 boundary" for fp32 at these magnitudes


def _compare(encoder, texts: list[str], batch_size: int = 32) -> dict[str, int]:
    import torch

    from repro.encode.mixed_head import MixedHead

    transform, weight, bias = encoder.decoder
    head = MixedHead(weight, bias, encoder.linear_kernel)  # the kernel of the fp32 head it is compared with
    ids, _ = encoder.tokenize(texts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    counts = {"weights": 0, "flips": 0, "chunks": 0, "empty": 0}
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [ids[i] for i in order[start : start + batch_size]]
            lengths = [len(seq) for seq in batch]
            inputs = torch.zeros((len(batch), max(lengths)), dtype=torch.long)
            mask = torch.zeros_like(inputs)
            for row, seq in enumerate(batch):
                inputs[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            real = encoder.encoder(input_ids=inputs, attention_mask=mask).last_hidden_state[mask.bool()]
            plain = torch.log1p(torch.relu(encoder._decoded_max(real, lengths))) * FACTOR
            mixed = torch.log1p(torch.relu(head.best(transform(real), lengths, FACTOR))) * FACTOR
            plain[:, encoder.special_ids] = 0
            mixed[:, encoder.special_ids] = 0
            qp, qm = torch.round(plain), torch.round(mixed)
            counts["chunks"] += sum(lengths) > encoder.CHUNK_TOKENS
            counts["empty"] += int((qp.sum(dim=1) == 0).sum())
            counts["weights"] += int((qp > 0).sum())
            for row, col in (qp != qm).nonzero().tolist():
                assert abs(qp[row, col] - qm[row, col]) == 1, "a weight moved by more than one unit"
                assert abs(plain[row, col] - (torch.floor(plain[row, col]) + 0.5)) < BOUNDARY, "a flip away from .5"
                counts["flips"] += 1
    return counts


@pytest.mark.slow
def test_mixed_head_equals_fp32_on_real_passages(splade_tiny, shared_data):
    from repro.encode.torch_encoder import SpladeEncoder

    encoder = SpladeEncoder(str(splade_tiny), max_length=256, device="cpu")
    corpus = shared_data / "msmarco-passage-dl20-pool" / "corpus.jsonl"
    texts = [json.loads(line)["contents"] for line in corpus.read_text(encoding="utf-8").splitlines()[:150]]
    texts += [".", "?!", "the", "a an the of"]  # short texts, some of which quantize to (almost) nothing
    counts = _compare(encoder, texts)
    assert counts["weights"] > 10_000 and counts["chunks"] > 0
    assert counts["flips"] <= 2, counts


@pytest.mark.slow
def test_mixed_head_equals_fp32_on_thousands_of_real_texts(splade_tiny, shared_data):
    """Cranfield, CACM and MS MARCO passages (2,000 texts), at the pipeline's document length."""
    from repro.encode.torch_encoder import SpladeEncoder
    from repro.formats.corpus import iter_docs

    encoder = SpladeEncoder(str(splade_tiny), max_length=256, device="cpu")
    texts = [d.text for d in iter_docs(shared_data / "cranfield" / "cran.all.1400")][:600]
    texts += [d.text for d in iter_docs(shared_data / "cacm" / "cacm.jsonl")][:700]
    texts += [d.text for d in iter_docs(shared_data / "msmarco-passage-dl20-pool" / "corpus.jsonl")][:700]
    counts = _compare(encoder, texts)
    assert counts["weights"] > 200_000 and counts["chunks"] > 30
    assert counts["flips"] <= 10, counts


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_bits_max_is_the_float_max(dtype):
    """The screen's bit-pattern max (int16 max where anything is >= +0, int16 min where all is
    negative) gives the float max bit for bit: columns all negative, all -0, -0 among negatives,
    zeros among positives, +-inf, subnormals, and texts of one row. The plain segment_max, which
    the autocast head uses, keeps NaN of either sign (bits_max is for NaN-free screens only)."""
    import torch

    from repro.encode.mixed_head import bits_max, segment_max

    torch.manual_seed(0)
    m = torch.randn(400, 64).to(getattr(torch, dtype))
    m[:, 0] = -m[:, 0].abs()  # all negative: the float max is the int16 minimum
    m[:, 1] = -0.0
    m[:, 2] = -m[:, 2].abs()
    m[7, 2] = -0.0  # -0 is the max of non-positive numbers
    m[:, 3] = m[:, 3].abs()
    m[11, 3] = 0.0
    m[:, 4] = float("-inf")
    m[3, 5] = float("inf")
    m[:, 6] = -m[:, 6].abs() * 1e-3  # tiny negatives, subnormal in float16
    lengths = [1, 150, 1, 98, 100, 50]
    ours = bits_max(m, lengths)
    spans = torch.tensor(lengths).cumsum(0).tolist()
    ref = torch.stack([m[stop - n : stop].float().amax(dim=0) for n, stop in zip(lengths, spans)]).to(m.dtype)
    assert torch.equal(ours.view(torch.int16), ref.view(torch.int16))
    assert torch.equal(bits_max(m, lengths, out=torch.empty_like(ours)), ours)
    with pytest.raises(TypeError):
        bits_max(m.float(), lengths)
    negative_nan = torch.tensor([-1], dtype=torch.int16).view(m.dtype)  # the sign bit set, as x86 makes NaN
    m[5, 0], m[6, 3] = negative_nan, negative_nan
    plain = segment_max(m, lengths)
    assert torch.isnan(plain[1, 0]) and torch.isnan(plain[1, 3])


def test_mixed_head_gives_non_finite_entries_as_fp32_does():
    """A head row with NaN, a NaN or +inf bias, a -inf bias (an entry masked off) and a NaN hidden
    state: the screen would drop what fp32 makes NaN or inf, so those come out as fp32 gives them."""
    import torch

    from repro.encode.mixed_head import MixedHead, segment_max

    torch.manual_seed(1)
    weight, bias = torch.randn(300, 16), torch.randn(300) * 0.1
    weight[3, 5] = float("nan")
    bias[4], bias[5], bias[6] = float("nan"), float("inf"), float("-inf")
    hidden, lengths = torch.randn(40, 16), [10, 20, 10]
    hidden[35, 2] = float("nan")  # the third text
    out = MixedHead(weight, bias).best(hidden, lengths, FACTOR)
    plain = segment_max(hidden @ weight.t(), lengths) + bias
    for col in (3, 4):
        assert torch.isnan(out[:2, col]).all() and torch.isnan(plain[:2, col]).all()
    assert (out[:2, 5] == float("inf")).all() and (out[:2, 6] == float("-inf")).all()
    assert torch.isnan(out[2]).all() and torch.isnan(plain[2]).all()
    kept = out[:2] > -float("inf")  # elsewhere: exact where it can count, as in the fp32 head
    assert torch.equal(out[:2][kept & torch.isfinite(out[:2])], plain[:2][kept & torch.isfinite(out[:2])])


def test_mixed_head_keeps_a_nan_that_only_the_screen_overflow_makes():
    """Finite weights and hidden states whose products overflow to +inf and -inf: fp32 sums them to
    NaN, and so does the bf16 screen; the screen's NaN must be recomputed, not read as 'below'."""
    import torch

    from repro.encode.mixed_head import MixedHead, segment_max

    torch.manual_seed(0)
    weight, bias = torch.randn(50, 16) * 0.1, torch.zeros(50)
    weight[7, 0], weight[7, 1] = 3e38, -3e38
    hidden = torch.randn(3, 16) * 0.5
    hidden[:, 0] = hidden[:, 1] = 2.0
    plain = segment_max(hidden @ weight.t(), [3]) + bias
    out = MixedHead(weight, bias).best(hidden, [3], FACTOR)
    assert torch.isnan(plain[0, 7]) and torch.isnan(out[0, 7])


def test_encode_precision_mixed_writes_the_same_collection(tmp_path, splade_tiny, shared_data):
    """`repro encode --precision mixed` against the default fp32 run on 60 real passages: the same
    documents, terms and weights (a one-unit .5 flip allowed, counted)."""
    from click.testing import CliRunner

    from repro.cli import cli
    from repro.formats.collection import iter_vectors

    lines = (shared_data / "msmarco-passage-dl20-pool" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:60]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, extra in (("fp32", ["--precision", "fp32"]), ("mixed", ["--precision", "mixed"])):
        result = CliRunner().invoke(cli, ["encode", str(corpus), "-m", str(splade_tiny), "-o", str(tmp_path / name),
                                          "--max-length", "256", "-q", *extra])
        assert result.exit_code == 0, result.output
    for name in ("fp32", "mixed"):  # the head each collection was made with is on record
        assert json.loads((tmp_path / name / "manifest.json").read_text())["head_precision"] == [name]
    plain, mixed = dict(iter_vectors(tmp_path / "fp32")), dict(iter_vectors(tmp_path / "mixed"))
    assert plain.keys() == mixed.keys()
    flips = sum(abs(plain[d].get(t, 0) - mixed[d].get(t, 0)) for d in plain for t in set(plain[d]) | set(mixed[d]))
    assert flips <= 1 and sum(len(v) for v in plain.values()) > 5000


def test_precision_names_and_shapes_the_screen_does_not_cover(splade_tiny):
    """auto (resolve_precision) is the default; an unknown name is one line; shapes the screen does not
    cover run the plain head."""
    from repro.encode.mixed_head import check_precision, resolve_precision
    from repro.encode.torch_encoder import SpladeEncoder
    from repro.errors import ReproError

    with pytest.raises(ReproError, match="unknown precision 'bf16'"):
        check_precision("bf16")
    assert SpladeEncoder(str(splade_tiny), device="cpu").precision == resolve_precision("auto", 128, "cpu")
    assert SpladeEncoder(str(splade_tiny), device="cpu", precision="fp32").precision == "fp32"
    assert SpladeEncoder(str(splade_tiny), device="cpu", precision="mixed").precision == "mixed"
    assert SpladeEncoder(str(splade_tiny), device="cpu", dtype="bfloat16", precision="mixed").precision == "fp32"


def test_encode_queries_precision_mixed_gives_the_same_query_file(tmp_path, splade_tiny, shared_data):
    """The query side takes --precision too: 200 real MS MARCO dev queries, the same Anserini query lines."""
    from click.testing import CliRunner

    from repro.cli import cli

    lines = (shared_data / "msmarco-passage" / "topics.msmarco-passage.dev-subset.txt").read_text(encoding="utf-8")
    topics = tmp_path / "topics.tsv"
    topics.write_text("\n".join(lines.splitlines()[:200]) + "\n", encoding="utf-8")
    for name in ("fp32", "mixed"):
        result = CliRunner().invoke(cli, ["encode", str(topics), "--queries", "-m", str(splade_tiny), "-o",
                                          str(tmp_path / f"{name}.tsv"), "--precision", name])
        assert result.exit_code == 0, result.output
        manifest = json.loads((tmp_path / f"{name}.tsv.manifest.json").read_text())
        assert manifest["head_precision"] == name
    plain = (tmp_path / "fp32.tsv").read_text().splitlines()
    assert len(plain) == 200 and plain == (tmp_path / "mixed.tsv").read_text().splitlines()


def test_auto_precision_is_mixed_only_where_it_was_measured_faster(tmp_path, monkeypatch):
    """`auto` (the default): the bf16 screen on an AMX CPU for a hidden size of 512 or more, on an
    AVX512-bf16 CPU without AMX for every width, fp32 elsewhere; an auto-mixed encoder gives the fp32
    encoder's vectors."""
    from repro.encode import mixed_head
    from repro.encode.mixed_head import resolve_precision
    from repro.encode.torch_encoder import SpladeEncoder
    from repro.testing import build_random_mlm

    assert mixed_head.cpu_bf16_unit() in ("amx", "avx512_bf16", None)  # the real probe runs on this CPU
    monkeypatch.setattr(mixed_head, "cpu_bf16_unit", lambda: "amx")
    assert resolve_precision("auto", 768, "cpu") == "mixed"
    assert resolve_precision("auto", 128, "cpu") == "fp32"
    assert resolve_precision("auto", 768, "cuda") == "fp32"
    assert resolve_precision("fp32", 768, "cpu") == "fp32" and resolve_precision("mixed", 128, "cpu") == "mixed"
    monkeypatch.setattr(mixed_head, "cpu_bf16_unit", lambda: "avx512_bf16")
    assert resolve_precision("auto", 128, "cpu") == "mixed" and resolve_precision("auto", 768, "cpu") == "mixed"
    assert resolve_precision("auto", 128, "cuda") == "fp32" and resolve_precision("fp32", 128, "cpu") == "fp32"
    monkeypatch.setattr(mixed_head, "cpu_bf16_unit", lambda: "amx")
    wide = build_random_mlm(tmp_path / "wide", hidden=512, layers=1, heads=2, intermediate=128)
    texts = ["a first text about rivers", "and another one, longer than the first text about rivers and lakes", ""]
    auto = SpladeEncoder(str(wide), device="cpu")
    plain = SpladeEncoder(str(wide), device="cpu", precision="fp32")
    assert (auto.precision, plain.precision) == ("mixed", "fp32")
    assert auto.encode(texts) == plain.encode(texts)
    monkeypatch.setattr(mixed_head, "cpu_bf16_unit", lambda: None)
    assert resolve_precision("auto", 768, "cpu") == "fp32"
    assert SpladeEncoder(str(wide), device="cpu").precision == "fp32"


def test_a_resumed_collection_keeps_the_head_of_its_finished_shards(tmp_path, splade_tiny, shared_data, monkeypatch):
    """Started where auto picked the mixed head, then interrupted: resuming where auto would pick
    fp32 keeps the mixed head; an explicit --precision fp32 is refused with one line, exit 2.
    (An explicit --precision mixed is in the settings digest, so switching away from it is refused
    as other settings already.)"""
    from click.testing import CliRunner

    from repro.cli import cli
    from repro.encode import mixed_head
    from repro.encode.documents import SHARDS, STATE
    from repro.formats.collection import shard_name

    lines = (shared_data / "msmarco-passage-dl20-pool" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:30]
    corpus, out = tmp_path / "c.jsonl", tmp_path / "coll"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    base = ["encode", str(corpus), "-m", str(splade_tiny), "-o", str(out), "--shard-size", "10", "-q"]
    monkeypatch.setattr(mixed_head, "cpu_bf16_unit", lambda: "avx512_bf16")  # auto -> mixed for splade-tiny
    assert CliRunner().invoke(cli, base).exit_code == 0
    monkeypatch.setattr(mixed_head, "cpu_bf16_unit", lambda: None)  # from here auto alone would pick fp32
    assert json.loads((out / "manifest.json").read_text())["head_precision"] == ["mixed"]
    (out / "manifest.json").unlink()  # as a kill after two of the three shards leaves it
    (out / SHARDS / shard_name(2)).unlink()
    (out / STATE / (shard_name(2) + ".stats.json")).unlink()
    refused = CliRunner().invoke(cli, [*base, "--precision", "fp32"])
    assert refused.exit_code == 2 and "encoded with the mixed head and this run uses fp32" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    resumed = CliRunner().invoke(cli, base)  # auto would be fp32 here: it follows the finished shards
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "manifest.json").read_text())["head_precision"] == ["mixed"]
