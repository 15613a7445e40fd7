"""Forecasting with Titans: `TitansForecaster` keeps learning from the observations streamed into it."""
from titans_ts.forecasting.forecaster import TitansForecaster

__all__ = ["TitansForecaster"]
