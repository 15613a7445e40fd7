"""Titans in pytorch-forecasting: `TitansPFModel` on a `TimeSeriesDataSet`, trained with a Lightning Trainer.

Forecasts the oil temperature (OT) of the bundled ETTh1 a day ahead from the last three days of all seven
channels plus the hour and weekday (known in advance), with quantiles from `QuantileLoss`. A short run
(two small epochs, about a minute on a laptop CPU); raise `limit_train_batches` and `max_epochs` for real use.
"""
import warnings

import lightning.pytorch as pl
from pytorch_forecasting import TimeSeriesDataSet
from pytorch_forecasting.metrics import QuantileLoss

from titans_ts.datasets import load_bundled_ett
from titans_ts.forecasting import TitansPFModel

warnings.filterwarnings("ignore", category=UserWarning)  # Lightning's hints about workers and loggers
pl.seed_everything(0, verbose=False)

frame = load_bundled_ett().head(3000).to_pandas()  # the first ~4 months, hourly
frame["series"] = "ETTh1"
frame["time_idx"] = range(len(frame))
frame["hour"] = frame["date"].dt.hour.astype("float32")
frame["weekday"] = frame["date"].dt.weekday.astype("float32")
channels = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
cutoff = len(frame) - 24 * 7  # hold out the last week

training = TimeSeriesDataSet(
    frame[frame.time_idx < cutoff], time_idx="time_idx", target="OT", group_ids=["series"],
    max_encoder_length=72, max_prediction_length=24,
    time_varying_known_reals=["hour", "weekday"], time_varying_unknown_reals=channels,
)
validation = TimeSeriesDataSet.from_dataset(training, frame, min_prediction_idx=cutoff, stop_randomization=True)

model = TitansPFModel.from_dataset(training, d_model=32, n_layers=1, heads=4, variant="mal", window=48,
                                   chunk_size=12, learning_rate=1e-2, loss=QuantileLoss())
trainer = pl.Trainer(max_epochs=2, limit_train_batches=15, gradient_clip_val=1.0, accelerator="cpu", logger=False,
                     enable_checkpointing=False, enable_model_summary=False)
trainer.fit(model, training.to_dataloader(train=True, batch_size=32, num_workers=0))

# Every day-ahead forecast whose 24 hours lie in the held-out week, against holding the last value.
quiet = dict(logger=False, enable_progress_bar=False)
loader = validation.to_dataloader(train=False, batch_size=64, num_workers=0)
pred = model.predict(loader, mode="quantiles", return_x=True, return_y=True, trainer_kwargs=quiet)
actual = pred.y[0]
median = pred.output[..., model.loss.quantiles.index(0.5)]
naive = pred.x["encoder_target"][:, -1:].expand_as(actual)
print(f"held-out week, {len(actual)} day-ahead forecasts of OT: MAE Titans {(median - actual).abs().mean():.3f}, "
      f"last value held {(naive - actual).abs().mean():.3f}")

# The last forecast in full: median and 10%-90% band, hour by hour.
q = model.loss.quantiles
lo, hi = pred.output[-1, :, q.index(0.1)], pred.output[-1, :, q.index(0.9)]
print(" hour  actual  median  [ 10%,   90%]")
for h in range(24):
    print(f"{h + 1:5d}  {actual[-1, h]:6.2f}  {median[-1, h]:6.2f}  [{lo[h]:5.2f}, {hi[h]:5.2f}]")
covered = ((pred.output[..., q.index(0.1)] <= actual) & (actual <= pred.output[..., q.index(0.9)])).float().mean()
print(f"10%-90% band covers {covered:.0%} of the held-out hours (nominal 80%)")
