"""Model files: round trip, refusal of foreign or malicious files."""
import pytest
import torch

from titans_ts.io import load_bundle, save_bundle


def test_round_trip_is_bit_exact(tmp_path):
    tensors = {"a": torch.randn(3, 4, dtype=torch.float64), "b": torch.arange(5)}
    save_bundle(tmp_path / "m.titans", tensors, {"horizon": 7, "names": ["x", "y"]}, kind="demo")
    loaded, meta = load_bundle(tmp_path / "m.titans", kind="demo")
    assert meta == {"horizon": 7, "names": ["x", "y"]}
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    assert [p.name for p in tmp_path.iterdir()] == ["m.titans"]  # no temporary file left behind


def test_refuses_other_kinds_and_foreign_files(tmp_path):
    save_bundle(tmp_path / "m.titans", {"a": torch.zeros(1)}, {}, kind="forecaster")
    with pytest.raises(ValueError, match="holds a 'forecaster' model, expected 'classifier'"):
        load_bundle(tmp_path / "m.titans", kind="classifier")
    (tmp_path / "junk").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="not a titans-ts model file"):
        load_bundle(tmp_path / "junk", kind="forecaster")
    with pytest.raises(ValueError, match="not a titans-ts model file"):
        load_bundle(tmp_path / "missing", kind="forecaster")


def test_refuses_a_pickle_payload_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save(Payload(), tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="not a titans-ts model file"):
        load_bundle(tmp_path / "evil.pt", kind="forecaster")
    assert not marker.exists()
