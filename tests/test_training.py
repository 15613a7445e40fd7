"""The shared Lightning training loop: learns, stops early, restores the best epoch, is reproducible."""
import warnings

import torch
from torch.utils.data import DataLoader, TensorDataset

from titans_ts import TitansConfig, TitansEncoder
from titans_ts.training import fit


class Toy(torch.nn.Module):
    """Predict x_{t-2} from a stream: a sequence task the encoder must remember for."""

    def __init__(self):
        super().__init__()
        self.inp, self.head = torch.nn.Linear(2, 16), torch.nn.Linear(16, 2)
        self.enc = TitansEncoder(TitansConfig(d_model=16, n_layers=1, heads=2, variant="mag", window=8, chunk_size=4))

    def forward(self, x):
        return self.head(self.enc(self.inp(x))[0])


def step(model, batch):
    (x,) = batch
    return (model(x)[:, 2:] - x[:, :-2]).pow(2).mean()


def loaders(seed=0):
    g = torch.Generator().manual_seed(seed)
    train = TensorDataset(torch.randn(64, 24, 2, generator=g))
    val = TensorDataset(torch.randn(16, 24, 2, generator=g))
    return DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=16)


def val_loss(model, val):
    with torch.no_grad():
        return sum(step(model, b).item() for b in val) / len(val)


def test_fit_learns_and_restores_the_best_epoch():
    torch.manual_seed(0)
    model = Toy()
    train, val = loaders()
    before = val_loss(model, val)
    result = fit(model, train, val, step=step, max_epochs=25, lr=1e-2, progress=False)
    after = val_loss(model, val)
    assert after < before / 3
    assert abs(after - result.best_loss) < 1e-5  # the restored weights are the best epoch's
    assert result.best_loss == min(h["val_loss"] for h in result.history)


def test_early_stopping_stops_when_validation_stalls():
    torch.manual_seed(0)
    model = Toy()
    train, val = loaders()
    result = fit(model, train, val, step=step, max_epochs=200, lr=0.5, patience=2, progress=False)
    assert result.epochs < 200


def test_same_seed_same_weights():
    weights = []
    for _ in range(2):
        torch.manual_seed(123)  # model init
        model = Toy()
        train, val = loaders()
        fit(model, train, val, step=step, max_epochs=2, seed=7, progress=False)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_without_validation_monitors_training_loss():
    torch.manual_seed(0)
    model = Toy()
    train, _ = loaders()
    result = fit(model, train, step=step, max_epochs=3, progress=False)
    assert len(result.history) == 3 and all("train_loss" in h for h in result.history)


def test_fit_keeps_lightning_internals_quiet():
    """In-memory loaders, batches skipped by a step's None and Lightning's use of a deprecated torch API
    are not the caller's concern."""
    torch.manual_seed(0)
    train, val = loaders()
    calls = []

    def skip_first(model, batch):  # None: the loop's way to skip a batch
        calls.append(batch)
        return None if len(calls) == 1 else step(model, batch)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(Toy(), train, val, step=skip_first, max_epochs=1, progress=False)
        warnings.warn("a caller's own warning still shows")
    messages = [str(w.message) for w in caught]
    assert len(calls) > 1  # the first batch was skipped, the rest trained
    assert not [m for m in messages if "many workers" in m or "treespec" in m or "returned `None`" in m]
    assert "a caller's own warning still shows" in messages
