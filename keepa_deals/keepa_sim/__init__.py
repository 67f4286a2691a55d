"""A Keepa API simulator: Keepa's wire format over real HTTP, exact token accounting.

Start it from the command line (`keepa-deals simulator`, `python -m
keepa_deals.keepa_sim`) or in-process (`KeepaSimulator(...).start()`), or answer
`requests` without a socket through `SimulatorAdapter`. Module map:

- `simulator.py`  the facade: construction, start/stop, control methods
- `app.py`        the pure request handler; `admin.py` its /_sim/ endpoints
- `server.py`     the HTTP layer; `adapter.py` the in-process `requests` adapter
- `bucket.py`     one key's token bucket; `accounts.py` keys and counters
- `catalogue.py`  the products (`words.py` their names); `timeline.py` when and how
                  they change; `hashing.py` the keyed randomness behind both
- `deal_record.py`, `deal_measures.py`, `selection.py`, `deals.py`  /deal
- `products.py` /product: `product_params.py` the request and its price,
                  `history.py` whole histories and stats, `product_parts.py` offers and
                  static fields, `buybox.py` the buy box holders
- `categories.py` /category and /search
- `wire.py`       the transport-neutral Response and JSON assembly
- `faults.py`     injected faults (the JSON schema is in its docstring)
- `timesource.py` wall, scaled, manual or shared clocks; `cli.py` the command
"""

from keepa_deals.keepa_sim.adapter import SimulatorAdapter
from keepa_deals.keepa_sim.simulator import DEFAULT_CATALOGUE_SIZE, KeepaSimulator
from keepa_deals.keepa_sim.wire import Response

__all__ = ["DEFAULT_CATALOGUE_SIZE", "KeepaSimulator", "Response", "SimulatorAdapter"]
