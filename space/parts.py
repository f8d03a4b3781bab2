"""What the screens are built from: the collaborators and settings values the UI reads, nothing more.

The composition root fills one `ScreenParts` and hands it to `space.ui.build_ui`; each view takes the
parts it reads. Nothing in space/ sees the application's runtime or the whole settings object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from core.bus import Bus
from core.lane import ScoringLane
from core.store import Store
from core.token_bucket import ClientBudgets
from desk.market import MarketDesk

if TYPE_CHECKING:
    from inference import InferenceService

__all__ = ["ScreenParts"]


@dataclass(frozen=True)
class ScreenParts:
    """Everything the UI reads or calls.

    Attributes:
        bus: the messages the views render (latest per topic, retained history, seqs as cache keys).
        store: the stored price buckets, news and Fear & Greed readings behind charts and the feed.
        market: whether prices are simulated now, and whether a live provider answers.
        inference: the models the Models tab shows and the playground scores with; None when off.
        symbols, data_mode, admin_token, data_dir, ui_queue_max: the settings values the screens read
            (`evaluation.json` is looked up in `data_dir`).
        budgets: the per-client budget the playground pays from (None: it does not pay).
        lane: the anonymous scoring lane the playground waits in (None: it scores at once).
    """

    bus: Bus
    store: Store
    market: MarketDesk
    inference: InferenceService | None
    symbols: tuple[str, ...]
    data_mode: str
    admin_token: SecretStr | None
    data_dir: Path
    ui_queue_max: int
    budgets: ClientBudgets | None = None
    lane: ScoringLane | None = None
