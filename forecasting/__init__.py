"""Forecasting with Titans: `TitansForecaster` keeps learning from the observations streamed into it.

`TitansPFModel` (the pytorch-forecasting model) loads on first access, so importing this package
does not import pytorch-forecasting.
"""
from titans_ts.forecasting.anomaly import TitansAnomalyDetector
from titans_ts.forecasting.forecaster import TitansForecaster

__all__ = ["TitansForecaster", "TitansAnomalyDetector", "TitansPFModel"]


def __getattr__(name: str):
    if name == "TitansPFModel":
        from titans_ts.forecasting.pf_model import TitansPFModel

        return TitansPFModel
    raise AttributeError(f"module 'titans_ts.forecasting' has no attribute {name!r}")
