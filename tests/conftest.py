import pytest
import torch

from titans_ts import TitansConfig, TitansEncoder


@pytest.fixture
def make_encoder():
    """A small float64 encoder of a variant, seeded."""

    def make(variant: str, **overrides) -> TitansEncoder:
        torch.manual_seed(0)
        kw = dict(d_model=16, n_layers=2, heads=2, variant=variant, window=8, chunk_size=4,
                  memory_depth=2, memory_expansion=2, persistent_tokens=2)
        kw.update(overrides)
        return TitansEncoder(TitansConfig(**kw)).double()

    return make


@pytest.fixture
def one_thread():
    """Small models run fastest on one thread, and 2-core CI runs two test workers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client():
    """A Dask client on a LocalCluster of 2 worker processes (one thread each), shared by a test module."""
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c
