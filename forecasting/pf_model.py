"""`TitansPFModel`: a Titans encoder as a pytorch-forecasting model (`TimeSeriesDataSet`, Lightning, `QuantileLoss`).

One token per time step. The encoder steps carry everything observed (target, unknown and known reals,
categorical embeddings, statics); the decoder steps carry only what is known in advance (known reals and
categoricals, statics) plus a learned embedding of the horizon step. The `TitansEncoder` streams the
encoder steps with its neural memory learning as it reads (test-time memorisation), then reads the
decoder steps from that state with the memory frozen; a linear head on each decoder step gives that
step's forecast. Forecasts are made in the dataset's normalised target space, anchored on the last
observed target (so the untrained model is the naive forecast), and rescaled by `transform_output`.
With `QuantileLoss` the quantiles are built as the median plus cumulative positive gaps: never crossing.

    model = TitansPFModel.from_dataset(training, d_model=32, loss=QuantileLoss())
    lightning.pytorch.Trainer(max_epochs=5).fit(model, training.to_dataloader(train=True))

Devices are the Trainer's, spelt as the other estimators spell them (`accelerator`, `devices`,
`strategy`, `precision`), e.g. `Trainer(accelerator="gpu", devices=4, strategy="ddp")`. The memory state
lives only inside a forward pass (nothing is kept on the module between batches) and every parameter
takes part in every batch, so DDP needs nothing more; as with any Lightning model, "ddp" from a
notebook or test needs Lightning's "ddp_notebook" (it re-runs a script's command line in each process).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_forecasting.data import TimeSeriesDataSet
from pytorch_forecasting.data.encoders import NaNLabelEncoder
from pytorch_forecasting.metrics import (MAE, MAPE, MASE, RMSE, SMAPE, DistributionLoss, MultiHorizonMetric,
                                         MultiLoss, QuantileLoss)
from pytorch_forecasting.models.base import BaseModelWithCovariates
from pytorch_forecasting.models.nn.embeddings import MultiEmbedding
from torch import Tensor, nn

from titans_ts import TitansConfig, TitansEncoder
from titans_ts.config import ALPHA_INIT


class TitansPFModel(BaseModelWithCovariates):
    """Titans neural long-term memory for `TimeSeriesDataSet`s; build it with `from_dataset`.

    Titans hyper-parameters (see `titans_ts.TitansConfig`): d_model, n_layers, heads, variant
    ("mal", "mag", "mac", "lmm"), window, chunk_size, memory_depth, persistent_tokens, memory_lr, alpha_init
    (where the memory's forgetting gate starts), forget_toward ("zero" or "initial": what forgetting pulls
    the memory towards), dropout.
    The covariate arguments (static_reals, x_reals, embedding_sizes, ...) are filled in by `from_dataset`;
    `prediction_length` is the dataset's `max_prediction_length`. `loss` defaults to `QuantileLoss()`;
    any point or quantile metric works (not distribution losses, not classification targets).
    """

    def __init__(
        self,
        d_model: int = 32,
        n_layers: int = 2,
        heads: int = 4,
        variant: str = "mal",
        window: int = 32,
        chunk_size: int = 8,
        memory_depth: int = 2,
        persistent_tokens: int = 4,
        memory_lr: float = 0.5,
        alpha_init: float = ALPHA_INIT,
        forget_toward: str = "zero",
        dropout: float = 0.0,
        prediction_length: int = 1,
        output_size: int | list[int] = 1,
        target: str | list[str] | None = None,
        static_categoricals: list[str] | None = None,
        static_reals: list[str] | None = None,
        time_varying_categoricals_encoder: list[str] | None = None,
        time_varying_categoricals_decoder: list[str] | None = None,
        categorical_groups: dict[str, list[str]] | None = None,
        time_varying_reals_encoder: list[str] | None = None,
        time_varying_reals_decoder: list[str] | None = None,
        embedding_sizes: dict[str, tuple[int, int]] | None = None,
        embedding_paddings: list[str] | None = None,
        embedding_labels: dict[str, list[str]] | None = None,
        x_reals: list[str] | None = None,
        x_categoricals: list[str] | None = None,
        loss: MultiHorizonMetric | MultiLoss | None = None,
        logging_metrics: nn.ModuleList | None = None,
        **kwargs,
    ):
        # pytorch-forecasting convention: None means "empty", saved as hyper-parameters before BaseModel.__init__
        static_categoricals = static_categoricals or []
        static_reals = static_reals or []
        time_varying_categoricals_encoder = time_varying_categoricals_encoder or []
        time_varying_categoricals_decoder = time_varying_categoricals_decoder or []
        categorical_groups = categorical_groups or {}
        time_varying_reals_encoder = time_varying_reals_encoder or []
        time_varying_reals_decoder = time_varying_reals_decoder or []
        embedding_sizes = embedding_sizes or {}
        embedding_paddings = embedding_paddings or []
        embedding_labels = embedding_labels or {}
        x_reals = x_reals or []
        x_categoricals = x_categoricals or []
        loss = QuantileLoss() if loss is None else loss
        if logging_metrics is None:
            logging_metrics = nn.ModuleList([SMAPE(), MAE(), RMSE(), MAPE(), MASE()])
        for metric in loss.metrics if isinstance(loss, MultiLoss) else [loss]:
            if isinstance(metric, DistributionLoss):
                raise ValueError(f"TitansPFModel forecasts points or quantiles; {type(metric).__name__} is a "
                                 "distribution loss: use QuantileLoss() or a point metric such as MAE()")
            if isinstance(metric, QuantileLoss) and list(metric.quantiles) != sorted(metric.quantiles):
                raise ValueError(f"QuantileLoss quantiles must be ascending, got {metric.quantiles}")
        self.save_hyperparameters(ignore=["loss", "logging_metrics"])  # modules: BaseModel keeps them
        super().__init__(loss=loss, logging_metrics=logging_metrics, **kwargs)
        config = TitansConfig(d_model=d_model, n_layers=n_layers, heads=heads, variant=variant, window=window,
                              chunk_size=chunk_size, memory_depth=memory_depth,
                              persistent_tokens=persistent_tokens, memory_lr=memory_lr, alpha_init=alpha_init,
                              forget_toward=forget_toward, dropout=dropout)

        self.input_embeddings = MultiEmbedding(embedding_sizes=embedding_sizes, x_categoricals=x_categoricals,
                                               categorical_groups=categorical_groups,
                                               embedding_paddings=embedding_paddings)
        self.embed_encoder = nn.Linear(self._width(self.encoder_variables + self.static_variables), d_model)
        self.embed_decoder = nn.Linear(self._width(self.decoder_variables + self.static_variables), d_model)
        self.horizon_step = nn.Embedding(prediction_length, d_model)  # which step ahead a decoder token is
        self.encoder = TitansEncoder(config)
        self.head = nn.Linear(d_model, sum(self._output_sizes))
        nn.init.zeros_(self.head.weight)  # start from the naive forecast: the last target value, held
        with torch.no_grad():
            self.head.bias.copy_(torch.cat([_gap_bias(m, n) for m, n in zip(self._metrics, self._output_sizes)]))

    @property
    def _output_sizes(self) -> list[int]:
        size = self.hparams.output_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    @property
    def _metrics(self) -> list[MultiHorizonMetric]:
        return list(self.loss.metrics) if isinstance(self.loss, MultiLoss) else [self.loss]

    def _width(self, variables: list[str]) -> int:
        """Features per token for these variables: one per real, the embedding width per categorical."""
        emb = self.input_embeddings.output_size
        return sum(1 for name in self.reals if name in variables) + sum(
            size for name, size in emb.items() if name in variables)

    def _features(self, x: dict[str, Tensor], period: str, variables: list[str]) -> Tensor:
        """(B, T, width) features of `period` ("encoder" or "decoder"), restricted to `variables`."""
        cont, embedded = x[f"{period}_cont"], self.input_embeddings(x[f"{period}_cat"])
        parts = [cont[..., i: i + 1] for i, name in enumerate(self.hparams.x_reals)
                 if name in self.reals and name in variables]
        parts += [embedded[name] for name in embedded if name in variables]
        return torch.cat(parts, dim=-1) if parts else cont.new_zeros(*cont.shape[:2], 0)

    def forward(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        """Stream the encoder steps (memory learning), read the decoder steps, forecast every decoder step."""
        static = self.static_variables
        enc = _align_right(self._features(x, "encoder", self.encoder_variables + static), x["encoder_lengths"])
        dec = self._features(x, "decoder", self.decoder_variables + static)
        steps = torch.arange(dec.shape[1], device=dec.device)
        _, state = self.encoder(self.embed_encoder(enc), memorize=True)  # test-time memorisation (paper §3.1)
        h, _ = self.encoder(self.embed_decoder(dec) + self.horizon_step(steps), state=state, memorize=False)

        rows = torch.arange(enc.shape[0], device=enc.device)
        last = x["encoder_cont"][rows, x["encoder_lengths"] - 1][:, self.target_positions]  # (B, targets), normalised
        raw = self.head(h).split(self._output_sizes, dim=-1)
        prediction = [_finish(r, last[:, i, None, None], m) for i, (r, m) in enumerate(zip(raw, self._metrics))]
        prediction = prediction if self.n_targets > 1 else prediction[0]
        return self.to_network_output(prediction=self.transform_output(prediction, target_scale=x["target_scale"]))

    @classmethod
    def from_dataset(cls, dataset: TimeSeriesDataSet, **kwargs) -> TitansPFModel:
        """Build the model for `dataset`: covariates, `prediction_length`, `output_size` and loss from it."""
        targets = dataset.target_names
        normalizers = getattr(dataset.target_normalizer, "normalizers", [dataset.target_normalizer])
        if any(isinstance(n, NaNLabelEncoder) for n in normalizers):
            raise ValueError("TitansPFModel is for regression: the target must not be categorical")
        missing = [t for t in targets if t not in dataset.reals]
        if missing:
            raise ValueError(f"target(s) {missing} must be among the dataset's reals: "
                             "list them in time_varying_unknown_reals")
        kwargs.setdefault("target", dataset.target)
        kwargs.setdefault("prediction_length", dataset.max_prediction_length)
        kwargs.update(cls.deduce_default_output_parameters(dataset, kwargs, QuantileLoss()))
        return super().from_dataset(dataset, **kwargs)


def _align_right(x: Tensor, lengths: Tensor) -> Tensor:
    """Move each sequence's `lengths[b]` valid steps (padded at the end by the collate) to the end, zeros before."""
    T = x.shape[1]
    idx = torch.arange(T, device=x.device) - (T - lengths)[:, None]  # (B, T): source step of each target step
    out = x.gather(1, idx.clamp_min(0)[..., None].expand(-1, -1, x.shape[-1]))
    return out * (idx >= 0)[..., None]


def _quantile_index(metric: QuantileLoss) -> int:
    return min(range(len(metric.quantiles)), key=lambda i: abs(metric.quantiles[i] - 0.5))


def _finish(raw: Tensor, anchor: Tensor, metric: MultiHorizonMetric) -> Tensor:
    """Raw head output (B, H, k) -> normalised forecast: anchored on the last value; quantiles non-crossing."""
    if isinstance(metric, QuantileLoss):
        m = _quantile_index(metric)
        gaps = F.softplus(raw)  # gap j < m lies below quantile j + 1, gap j > m above quantile j − 1
        center = raw[..., m: m + 1]
        below = center - gaps[..., :m].flip(-1).cumsum(-1).flip(-1)
        above = center + gaps[..., m + 1:].cumsum(-1)
        raw = torch.cat([below, center, above], dim=-1)
    return anchor + raw


def _gap_bias(metric: MultiHorizonMetric, size: int) -> Tensor:
    """Initial head bias: 0 for points; for quantiles, gaps of a standard normal's quantiles (softplus⁻¹)."""
    bias = torch.zeros(size)
    if isinstance(metric, QuantileLoss):
        z = torch.special.ndtri(torch.tensor(metric.quantiles, dtype=torch.float64))
        gaps = (z[1:] - z[:-1]).clamp_min(1e-3)
        m = _quantile_index(metric)
        inv = gaps.expm1().log().float()  # softplus(inv) == gaps
        bias[:m], bias[m + 1:] = inv[:m], inv[m:]
    return bias
