"""TitansPFModel: a pytorch-forecasting model that trains with a Lightning Trainer and predicts quantiles."""
import numpy as np
import pandas as pd
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")
pytest.importorskip("pytorch_forecasting")
from pytorch_forecasting import TimeSeriesDataSet  # noqa: E402
from pytorch_forecasting.metrics import QuantileLoss  # noqa: E402

from titans_ts.forecasting import TitansPFModel  # noqa: E402

H = 6


def _dataset() -> tuple[pd.DataFrame, TimeSeriesDataSet]:
    """Two noisy daily cycles, 200 hourly steps each; hour of day known ahead, series id static."""
    rng = np.random.default_rng(0)
    t = np.arange(200)
    frames = [pd.DataFrame({"series": str(g), "time_idx": t, "hour": (t % 24).astype("float32"),
                            "y": g + np.sin(2 * np.pi * t / 24 + g) + 0.1 * rng.standard_normal(200)})
              for g in range(2)]
    df = pd.concat(frames, ignore_index=True)
    ds = TimeSeriesDataSet(df, time_idx="time_idx", target="y", group_ids=["series"], min_encoder_length=12,
                           max_encoder_length=24, max_prediction_length=H, static_categoricals=["series"],
                           time_varying_known_reals=["hour"], time_varying_unknown_reals=["y"])
    return df, ds


def _loss(model: TitansPFModel, batches: list) -> float:
    model.eval()
    with torch.no_grad():
        return float(np.mean([model.loss(model(x)["prediction"], y).item() for x, y in batches]))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pf_model_trains_one_epoch_and_predicts_quantiles():
    df, ds = _dataset()
    torch.manual_seed(0)
    model = TitansPFModel.from_dataset(ds, d_model=16, n_layers=1, heads=2, window=16, chunk_size=8,
                                       learning_rate=3e-2, loss=QuantileLoss())
    assert model.hparams.output_size == 7 and model.hparams.prediction_length == H

    train = ds.to_dataloader(train=True, batch_size=16, num_workers=0)
    fixed = [b for b, _ in zip(ds.to_dataloader(train=False, batch_size=64, num_workers=0), range(2))]
    x, _ = fixed[0]
    with torch.no_grad():  # the decoder part of x holds the future target: the forecast must not see it
        peeked = {k: (v.clone() if k == "decoder_cont" else v) for k, v in x.items()}
        peeked["decoder_cont"][..., model.target_positions] += 10.0
        assert torch.equal(model(x)["prediction"], model(peeked)["prediction"])
    untrained = _loss(model, fixed)

    val = ds.to_dataloader(train=False, batch_size=64, num_workers=0)  # its val_loss drives the LR schedule
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", limit_train_batches=20, limit_val_batches=2, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train, val)
    trained = _loss(model, fixed)
    assert trained < 0.8 * untrained, (untrained, trained)  # better than the naive start it began from

    future = TimeSeriesDataSet.from_dataset(ds, df, predict=True, stop_randomization=True)
    loader = future.to_dataloader(train=False, batch_size=8, num_workers=0)
    point = model.predict(loader, trainer_kwargs=dict(logger=False, enable_progress_bar=False))
    assert point.shape == (2, H) and torch.isfinite(point).all()
    quantiles = model.predict(loader, mode="quantiles", trainer_kwargs=dict(logger=False, enable_progress_bar=False))
    assert quantiles.shape == (2, H, 7)
    assert (quantiles.diff(dim=-1) >= 0).all()  # quantiles never cross
    assert torch.allclose(point, quantiles[..., 3])  # the point forecast is the median


def test_pf_model_passes_the_titans_settings_to_its_encoder():
    _, ds = _dataset()
    model = TitansPFModel.from_dataset(ds, d_model=16, n_layers=1, heads=2, window=16, chunk_size=8,
                                       memory_lr=0.25, alpha_init=0.01, forget_toward="initial")
    memory = model.encoder.layers[0].memory
    assert memory.max_lr == 0.25 and model.hparams.alpha_init == 0.01
    assert memory.forget_toward == model.hparams.forget_toward == "initial"
    torch.testing.assert_close(torch.sigmoid(memory.to_gates.bias[2 * memory.heads:]), torch.full((2,), 0.01))


def test_pf_model_trains_under_ddp_on_two_cpu_processes():
    """Nothing on the module blocks DDP: no state kept between batches, no parameter left out of a batch
    (DDP stops with an error on either); rank 0's weights come back to the caller's model."""
    _, ds = _dataset()
    torch.manual_seed(0)
    model = TitansPFModel.from_dataset(ds, d_model=16, n_layers=1, heads=2, window=16, chunk_size=8,
                                       learning_rate=3e-2, loss=QuantileLoss())
    fixed = [b for b, _ in zip(ds.to_dataloader(train=False, batch_size=64, num_workers=0), range(2))]
    untrained = _loss(model, fixed)
    train = ds.to_dataloader(train=True, batch_size=16, num_workers=0)
    # "ddp_notebook" forks from the caller; "ddp" would run pytest's command line again in each process
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp_notebook", limit_train_batches=10,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train)
    assert _loss(model, fixed) < 0.9 * untrained
