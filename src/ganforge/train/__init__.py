"""Training: the only place optimisers step."""

from ganforge.train.config import RunConfig
from ganforge.train.run import TrainedRun, load_run, train
from ganforge.train.trainer import Interrupted, TrainResult

__all__ = ["RunConfig", "train", "load_run", "TrainedRun", "TrainResult", "Interrupted"]
