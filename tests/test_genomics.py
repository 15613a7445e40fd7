"""TitansDNAClassifier: learns, predicts probabilities, is strand-symmetric, saves exactly, follows sklearn."""
import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import log_loss

from titans_ts.datasets import planted_motif_dna
from titans_ts.genomics import TitansDNAClassifier, encode, reverse_complement, scan
from titans_ts.genomics.data import StrandDataset
from titans_ts.genomics.tokenize import PAD, kmer_ids, pad_batch

TINY = dict(d_model=16, n_layers=1, heads=2, window=8, chunk_size=8, k=3, stride=1, epochs=1, batch_size=32,
            random_state=0)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    seqs, labels = planted_motif_dna(120, 30, ["TATAAT"], seed=1)
    return seqs, labels


@pytest.fixture(scope="module")
def fitted(data):
    torch.set_num_threads(1)
    return TitansDNAClassifier(**TINY).fit(*data)


# -- letters -------------------------------------------------------------------------------------------
def test_encoding_ignores_case_and_reads_u_as_t():
    assert np.array_equal(encode("acgtn"), encode("ACGTN"))
    assert np.array_equal(encode("ACGU"), encode("ACGT"))


def test_invalid_letter_names_sequence_and_position():
    with pytest.raises(ValueError, match=r"seq7: invalid character 'X' at position 3"):
        encode("ACXT", "seq7")
    with pytest.raises(ValueError, match="empty sequence"):
        encode("", "s")


def test_reverse_complement_is_iupac_aware_and_an_involution():
    assert reverse_complement("aACGTN") == "NACGTT"
    assert reverse_complement("RYKMBVDHSW") == "WSDHBVKMRY"
    seq = "ACGTRYSWKMBDHVN"
    assert reverse_complement(reverse_complement(seq)) == seq


def test_kmer_ids_and_unknown_kmers():
    codes, _ = pad_batch([encode("ACGTN")])
    ids = kmer_ids(torch.cat([torch.full((1, 1), 15), codes], 1), 2)  # one base of (padding) context
    # k-mers ending at each base: ?A, AC, CG, GT, TN -> unknown, 1, 6, 11, unknown
    assert ids.tolist() == [[16, 1, 6, 11, 16]]


# -- learning ------------------------------------------------------------------------------------------
def test_learns_a_planted_motif_well_above_chance():
    seqs, labels = planted_motif_dna(800, 40, ["TATAAT"], seed=0)
    # one exact 6-mer decides the label: the default mutation noise would break 74% of its copies
    clf = TitansDNAClassifier(d_model=16, n_layers=1, heads=2, k=6, stride=1, epochs=6, lr=0.02, dropout=0.0,
                              mutation=0.0, batch_size=32, random_state=0)
    clf.fit(seqs[:600], labels[:600])
    assert clf.score(seqs[600:], labels[600:]) > 0.8


def test_mutation_replaces_bases_at_its_rate_with_fresh_noise_and_keeps_the_data():
    codes = encode("ACGTN" * 2000)
    kept = codes.copy()
    data = StrandDataset([codes], torch.tensor([0]), augment=False, mutation=0.2)
    torch.manual_seed(0)
    first, second = data[0][0], data[0][0]
    changed = first != kept
    # a replaced base is A, C, G or T, the same one a quarter of the time: 0.2 * (1 - 1/4) of bases change
    # (N always changes: every replacement is a base)
    assert abs(changed[kept < 4].mean() - 0.15) < 0.02 and abs(changed[kept == 14].mean() - 0.2) < 0.03
    assert set(np.unique(first[changed])) <= {0, 1, 2, 3}
    assert (first != second).any()  # drawn afresh at every access (every epoch)
    np.testing.assert_array_equal(codes, kept)  # the training data itself is untouched
    np.testing.assert_array_equal(StrandDataset([codes], torch.tensor([0]), False)[0][0], kept)


def test_predict_proba_rows_sum_to_one_and_predict_gives_labels(fitted, data):
    seqs, labels = data
    probs = fitted.predict_proba(seqs)
    assert probs.shape == (len(seqs), 2) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-14)  # in float64, as sklearn's log_loss checks them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_loss(labels, probs, labels=fitted.classes_)
    assert np.array_equal(fitted.predict(seqs), fitted.classes_[probs.argmax(1)])
    assert set(fitted.predict(seqs)) <= {0, 1}


def test_reverse_complement_averaging_is_strand_symmetric(fitted, data):
    seqs = data[0][:20] + ["ACGTNNRYACGTAC"]
    np.testing.assert_allclose(fitted.predict_proba(seqs), fitted.predict_proba([reverse_complement(s) for s in seqs]),
                               atol=1e-6)


def test_case_does_not_matter(fitted, data):
    seqs = data[0][:10]
    np.testing.assert_array_equal(fitted.predict_proba(seqs), fitted.predict_proba([s.lower() for s in seqs]))


def test_variable_lengths_and_long_sequences_stream_in_pieces(fitted):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (5, 31, 300)]
    alone = np.vstack([fitted.predict_proba([s]) for s in seqs])
    np.testing.assert_allclose(fitted.predict_proba(seqs), alone, atol=1e-5)  # padding changes nothing
    codes, lengths = pad_batch([encode(seqs[2])])
    with torch.inference_mode():
        whole = fitted.model_(codes, lengths, 1024)
        pieces = fitted.model_(codes, lengths, 7)  # 300 bases in pieces of 7, memory carried between them
    torch.testing.assert_close(whole, pieces, atol=1e-5, rtol=1e-5)


def test_string_labels_and_more_than_two_classes():
    seqs, _ = planted_motif_dna(90, 24, ["A"], seed=2)
    labels = np.array(["cat", "dog", "emu"])[np.arange(90) % 3]
    clf = TitansDNAClassifier(**TINY).fit(seqs, labels)
    assert clf.classes_.tolist() == ["cat", "dog", "emu"]
    assert clf.predict_proba(seqs).shape == (90, 3)
    assert set(clf.predict(seqs)) <= {"cat", "dog", "emu"}
    ints = TitansDNAClassifier(**TINY).fit(seqs, np.array([3, 7, 11])[np.arange(90) % 3])
    assert ints.classes_.tolist() == [3, 7, 11] and ints.predict(seqs[:3]).dtype.kind == "i"


def test_same_random_state_same_model(data):
    a = TitansDNAClassifier(**TINY).fit(*data).predict_proba(data[0])
    b = TitansDNAClassifier(**TINY).fit(*data).predict_proba(data[0])
    np.testing.assert_array_equal(a, b)


# -- files ---------------------------------------------------------------------------------------------
def test_save_load_gives_identical_probabilities(fitted, data, tmp_path):
    fitted.save(tmp_path / "m.titans")
    loaded = TitansDNAClassifier.load(tmp_path / "m.titans")
    np.testing.assert_array_equal(loaded.predict_proba(data[0]), fitted.predict_proba(data[0]))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.classes_.tolist() == fitted.classes_.tolist()
    with pytest.raises(ValueError, match="not a titans-ts model file"):
        TitansDNAClassifier.load(tmp_path / "missing.titans")


# -- scikit-learn hygiene ------------------------------------------------------------------------------
def test_sklearn_parameters_clone_and_not_fitted():
    clf = TitansDNAClassifier(variant="mal", k=5, encoder_kwargs={"memory_expansion": 2})
    assert clf.get_params()["k"] == 5 and clone(clf).get_params() == clf.get_params()
    assert clf.set_params(variant="lmm").variant == "lmm"
    with pytest.raises(NotFittedError):
        clf.predict(["ACGT"])


@pytest.mark.parametrize("params, message", [
    (dict(variant="xyz"), "variant must be one of"),
    (dict(tokenizer="bpe"), "tokenizer must be one of"),
    (dict(rc="both"), "rc must be one of"),
    (dict(k=0), "k must be an integer >= 1"),
    (dict(max_len=10, stride=4), "multiple of stride"),
    (dict(encoder_kwargs={"window": 3}), "repeats parameters"),
    (dict(encoder_kwargs={"bogus": 1}), "encoder_kwargs"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(positions=-1), "positions must be an integer >= 0"),
    (dict(mutation=1.5), r"mutation must be a probability in \[0, 1\]"),
])
def test_bad_parameters_fail_in_fit_and_change_nothing(fitted, data, params, message):
    clf = clone(fitted).set_params(**params)
    with pytest.raises(ValueError, match=message):
        clf.fit(*data)
    assert not hasattr(clf, "model_")


def test_bad_input_is_refused_and_a_fitted_model_is_kept(fitted, data):
    before = fitted.predict_proba(data[0][:5])
    with pytest.raises(ValueError, match=r"sequence 1: invalid character '!' at position 2"):
        fitted.fit(["ACGT", "A!GT"], [0, 1])
    with pytest.raises(TypeError, match="single string"):
        fitted.predict("ACGT")
    with pytest.raises(ValueError, match="one label per sequence"):
        fitted.fit(["ACGT", "AAGT"], [0])
    with pytest.raises(ValueError, match="at least two classes"):
        fitted.fit(["ACGT", "AAGT"], [1, 1])
    np.testing.assert_array_equal(fitted.predict_proba(data[0][:5]), before)


# -- scan ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [{}, {"bag": True, "stride": 2}])
def test_scan_first_window_equals_prediction_and_windows_cover_the_record(data, extra):
    clf = TitansDNAClassifier(**{**TINY, "rc": "augment", **extra}).fit(*data)  # forward strand only, as scan reads
    record = "".join(data[0][:4])  # 120 bases
    windows = list(scan(clf, record, window=30, stride=10))
    assert [(w.start, w.end) for w in windows] == [(s, s + 30) for s in range(0, 91, 10)]
    np.testing.assert_allclose(windows[0].probs, clf.predict_proba([record[:30]])[0], atol=1e-5)
    ragged = list(scan(clf, record[:95], window=30, stride=10))
    assert ragged[-1].end == 95 and ragged[-1].start == 70
    with pytest.raises(ValueError, match="multiple of stride"):
        next(scan(clf, record, window=30, stride=7))


# -- surprise ------------------------------------------------------------------------------------------
def test_surprise_gives_one_row_per_base_finite_and_non_negative(fitted):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (5, 31, 300)] + ["ACGTNNRYAC"]
    frame = fitted.surprise(seqs, ids=["a", "b", "c", "d"])
    assert frame.columns == ["id", "position", "momentary", "past"] and frame.height == 5 + 31 + 300 + 10
    for rid, seq in zip("abcd", seqs):
        assert frame.filter(frame["id"] == rid)["position"].to_list() == list(range(len(seq)))
    values = frame.select("momentary", "past").to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (frame["momentary"] > 0).all()
    assert fitted.surprise(seqs[:2])["id"].unique().sort().to_list() == [0, 1]  # ids default to indices


def test_surprise_positions_share_the_values_of_their_token(data):
    clf = TitansDNAClassifier(**{**TINY, "stride": 4}).fit(*data)  # 4 bases a token
    frame = clf.surprise(["ACGTTGCAAC"])
    momentary = frame["momentary"].to_numpy()
    assert frame["position"].to_list() == list(range(10))  # the last, partial token: 2 bases
    for first in (0, 4, 8):
        assert np.unique(momentary[first: first + 4]).size == 1
    assert len({momentary[0], momentary[4], momentary[8]}) == 3


def test_surprise_streams_long_sequences_in_pieces_and_ignores_padding(fitted):
    rng = np.random.default_rng(1)
    seqs = ["".join(rng.choice(list("ACGT"), n)) for n in (300, 12, 77)]
    whole = fitted.surprise(seqs)
    alone = [fitted.surprise([s]).drop("id") for s in seqs]
    for i, frame in enumerate(alone):  # batched with other lengths (right padding) == read alone
        np.testing.assert_allclose(whole.filter(whole["id"] == i).drop("id").to_numpy(), frame.to_numpy(), atol=1e-5)
    pieces = copy.deepcopy(fitted).set_params(max_len=7)  # 300 bases in pieces of 7, the memory carried
    np.testing.assert_allclose(pieces.surprise(seqs).to_numpy(), whole.to_numpy(), atol=1e-5)


def test_surprise_leaves_the_fitted_model_unchanged(fitted, data):
    weights = {k: v.clone() for k, v in fitted.model_.state_dict().items()}
    before = fitted.predict_proba(data[0][:5])
    first = fitted.surprise(data[0][:5])
    assert fitted.surprise(data[0][:5]).equals(first)  # nothing learnt carries over from one call to the next
    for k, v in fitted.model_.state_dict().items():
        assert torch.equal(v, weights[k]), k
    np.testing.assert_array_equal(fitted.predict_proba(data[0][:5]), before)


def test_surprise_is_lower_on_a_repeat_the_memory_has_seen(fitted):
    # 30 sequences, each one random 50-mer repeated 8 times; a control of fresh random bases; and the
    # repeat with its 7th copy replaced by fresh bases. Checked per sequence: the first copy is the most
    # surprising in all 30 (the memory also warms up, as the control shows, so the next two are the
    # test of memory): the changed copy is more surprising than the repeat it replaces in 28 of 30 and on
    # average by 15 %, and the repeat's second half less surprising than fresh bases in 28 of 30.
    rng = np.random.default_rng(0)
    repeats, fresh, changed = [], [], []
    for _ in range(30):
        unit, novel = "".join(rng.choice(list("ACGT"), 50)), "".join(rng.choice(list("ACGT"), 400))
        repeats.append(unit * 8)
        fresh.append(novel)
        changed.append(unit * 6 + novel[300:350] + unit)
    momentary = fitted.surprise(repeats + fresh + changed)["momentary"].to_numpy().reshape(3, 30, 8, 50).mean(3)
    rep, new, chg = momentary  # (30 sequences, 8 copies) mean surprise per copy
    assert (rep[:, 0] > rep[:, 1:].max(1)).all()
    assert chg[:, 6].mean() > 1.05 * rep[:, 6].mean() and (chg[:, 6] > rep[:, 6]).mean() > 0.8
    assert rep[:, 4:].mean() < new[:, 4:].mean() and (rep[:, 4:].mean(1) < new[:, 4:].mean(1)).mean() > 0.8
    np.testing.assert_array_equal(chg[:, :6], rep[:, :6])  # causal: nothing before the change moves


def test_surprise_refuses_bad_input_and_needs_a_fitted_model(fitted):
    with pytest.raises(ValueError, match=r"r2: invalid character 'X' at position 3"):
        fitted.surprise(["ACGT", "ACXT"], names=["r1", "r2"])
    with pytest.raises(ValueError, match="ids holds 1 entries for 2 sequences"):
        fitted.surprise(["ACGT", "ACGT"], ids=["a"])
    with pytest.raises(TypeError, match="single string"):
        fitted.surprise("ACGT")
    with pytest.raises(NotFittedError):
        TitansDNAClassifier().surprise(["ACGT"])


def test_bag_adds_the_mean_of_its_kmer_logits():
    from titans_ts import TitansConfig
    from titans_ts.genomics.model import DNANet
    torch.manual_seed(0)
    net = DNANet(2, TitansConfig(d_model=8, n_layers=1, heads=2, window=4, chunk_size=4), "kmer", 3, 1, "mean", 0,
                 bag=True).eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        net.bag.weight[:-1].normal_()  # the unknown k-mer stays at zero
    codes, lengths = pad_batch([encode("ACGTTGCANAC"), encode("GGGTA")], 1)
    ids = kmer_ids(torch.cat([torch.full((2, 2), PAD), codes], 1), 3)  # a stream starts after padding
    expected = [net.bag.weight[ids[i, :n]].mean(0) for i, n in enumerate(lengths.tolist())]
    with torch.no_grad():
        torch.testing.assert_close(net(codes, lengths, piece=4), torch.stack(expected))
    with pytest.raises(ValueError, match="bag needs tokenizer='kmer'"):
        DNANet(2, TitansConfig(d_model=8, n_layers=1, heads=2), "nucleotide", bag=True)


@pytest.mark.parametrize("tokenizer", ["nucleotide", "kmer"])
def test_tokens_read_each_base_with_the_k_minus_1_before_it(tokenizer):
    from titans_ts import TitansConfig
    from titans_ts.genomics.model import DNANet
    from titans_ts.genomics.tokenize import base_probabilities
    torch.manual_seed(0)
    net = DNANet(2, TitansConfig(d_model=8, n_layers=1, heads=2, window=4, chunk_size=4), tokenizer, 4, 1).eval()
    if tokenizer == "kmer":  # beside the k-mer table the linear part starts at zero; give it weights to check
        assert not net.bases.weight.any() and not net.bases.bias.any()
        with torch.no_grad():
            net.bases.weight.normal_()
            net.bases.bias.normal_()
    codes, lengths = pad_batch([encode("ACGTNACGGTRA")])
    probs = torch.cat([torch.zeros(3, 4), base_probabilities()[codes[0]]])  # nothing before the start
    w, b = net.bases.weight, net.bases.bias  # (d, 4, k): one position weight row per base of the k
    expected = torch.stack([b + torch.einsum("dck,kc->d", w, probs[i: i + 4]) for i in range(len(codes[0]))])
    if tokenizer == "kmer":  # plus the k-mer's own entry (the unknown k-mer's where one holds N or R)
        expected += net.embed.weight[kmer_ids(torch.cat([torch.full((1, 3), PAD), codes], 1), 4)[0]]
    with torch.no_grad():
        x, tail, _ = net._inputs(codes, net.start(1))
        torch.testing.assert_close(x[0], expected)
        assert tail.tolist() == [codes[0, -3:].tolist()]
        if tokenizer == "nucleotide":  # an ambiguity code is the mean of the bases it allows, in every window
            as_bases = [net._inputs(pad_batch([encode(f"ACGT{n}ACGGTRA")])[0], net.start(1))[0] for n in "ACGT"]
            torch.testing.assert_close(x, torch.stack(as_bases).mean(0))
        # a stream cut anywhere gives the same outputs: the next piece starts from the k − 1 bases kept
        whole = net(codes, lengths, piece=12)
        torch.testing.assert_close(net(codes, lengths, piece=5), whole, atol=1e-6, rtol=1e-6)
